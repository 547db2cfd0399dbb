"""The wrappers around litellm's entry points: one call, attributed once."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from sys import _getframe
from types import CoroutineType, FrameType
from typing import Any

import litellm
from litellm.integrations.custom_logger import CustomLogger
from litellm.litellm_core_utils import litellm_logging as _litellm_logging
from litellm.router import Router
from litellm.types.utils import ModelResponse as _ModelResponse

from tokenmeter import _errors, _scope
from tokenmeter._budgets import before_call
from tokenmeter._frame import Frame
from tokenmeter._meter import DEFAULT_ROOT_FRAME
from tokenmeter._scope import THREAD_CALL as _THREAD_CALL

from .deferred import defer
from .extract import model_provider, requested_model
from .record import CallState, record_failure, record_result
from .settings import SETTINGS
from .stream_call import StreamCall
from .stream_classes import is_stream
from .streams import attach_stream, hide_usage_chunk

# Bound by assignment, not by ``from ... import``: CPython 3.11 compiles ``NAME.get()``
# on an imported name as an attribute load that builds a bound method on every call
# (about 40 ns each, three times per scope); on an assigned name it is a method call.
CURRENT = _scope.CURRENT
IN_CALL = _scope.IN_CALL

logger = logging.getLogger("tokenmeter")
_perf_counter = time.perf_counter

installed = False


def set_installed(value: bool) -> None:
    global installed
    installed = value


_stream_options_ok: dict[str, bool] = {}


def _supports_stream_options(model: str) -> bool:
    ok = _stream_options_ok.get(model)
    if ok is None:
        try:
            _, provider, _, _ = litellm.get_llm_provider(model)
            params: Any = litellm.get_supported_openai_params(
                model=model, custom_llm_provider=provider
            )
            ok = bool(params) and "stream_options" in params
        except Exception:
            ok = False
        if len(_stream_options_ok) < 10_000:
            _stream_options_ok[model] = ok
    return ok


#: Servers, as (api_base, provider), that refused the stream_options tokenmeter added.
_stream_options_refused: dict[tuple[str | None, str | None], bool] = {}
_REFUSED_MAX = 10_000


def _server(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str | None, str | None]:
    base = kwargs.get("api_base") or kwargs.get("base_url")
    provider = kwargs.get("custom_llm_provider")
    if not provider:
        provider = model_provider(requested_model(args, kwargs), None)[1]
    return (str(base) if base else None, str(provider) if provider else None)


def _prepare(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Ask for a final usage chunk on a chat stream, if on and the provider takes it.

    Not on a Router's own method: the attempt it makes, which knows the deployment's
    server, asks instead. Not to a server that refused it before.
    """
    if (
        SETTINGS["request_stream_usage"]
        and kind == "completion"
        and kwargs.get("stream") is True
        and kwargs.get("stream_options") is None
        and not (args and isinstance(args[0], Router))
        and _supports_stream_options(requested_model(args, kwargs))
        and _server(args, kwargs) not in _stream_options_refused
    ):
        kwargs["stream_options"] = {"include_usage": True}
        return True
    return False


def _refused_stream_options(
    exc: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bool:
    """Whether ``exc`` is the server refusing the stream_options we added; if so, take them out.

    A 400 or 422 whose message names the field (strict OpenAI-compatible servers and
    gateways): the server is remembered and the caller's call made again without it.
    """
    try:
        if getattr(exc, "status_code", None) not in (400, 422) or "stream_options" not in str(exc):
            return False
        kwargs.pop("stream_options", None)
        server = _server(args, kwargs)
        if len(_stream_options_refused) < _REFUSED_MAX:
            _stream_options_refused[server] = True
        logger.info(
            "%s refused stream_options; its streams are sent without it and estimated", server
        )
        return True
    except Exception:
        _errors.log_internal_error("stream_options refusal")
        return False


def _call_refusable(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)`` with our stream_options; made again without if refused."""
    __tracebackhide__ = True
    try:
        return fn(*args, **kwargs)
    except BaseException as e:
        if not _refused_stream_options(e, args, kwargs):
            raise
    return fn(*args, **kwargs)


async def _await_refusable(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], first: Any = None
) -> Any:
    """`_call_refusable` for an asynchronous entry point (``first``: its call, made already)."""
    __tracebackhide__ = True
    try:
        return await (fn(*args, **kwargs) if first is None else first)
    except BaseException as e:
        if not _refused_stream_options(e, args, kwargs):
            raise
    return await fn(*args, **kwargs)


def _after(
    frame: Frame,
    kind: str,
    result: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    started: float,
    state: CallState,
    injected: bool,
) -> None:
    try:
        if is_stream(result):
            if injected:
                hide_usage_chunk(result)
            if state.streams == 0:  # else an attempt inside (Router) already attached its own
                state.streams += 1
                attach_stream(result, StreamCall(frame, kind, args, kwargs, started))
        else:
            record_result(frame, kind, result, args, kwargs, started, state)
    except Exception:
        _errors.log_internal_error("call recording")


def _nested_result(
    state: CallState,
    kind: str,
    result: Any,
    args: tuple[Any, ...],
    kwargs: Any,
    injected: bool,
) -> None:
    """An attempt inside a recorded call answered: note who answered; streams record here."""
    with _errors.internal_errors_swallowed("stream attach"):
        hp: Any = getattr(result, "_hidden_params", None)
        if isinstance(hp, dict) or hasattr(hp, "get"):
            state.answered = (
                hp.get("litellm_model_name") or requested_model(args, kwargs),
                hp.get("custom_llm_provider"),
                hp.get("response_cost"),
            )
        if is_stream(result):
            if injected:
                hide_usage_chunk(result)
            state.streams += 1
            frame = CURRENT.get() or DEFAULT_ROOT_FRAME
            attach_stream(result, StreamCall(frame, kind, args, kwargs, time.perf_counter()))


# -- calls made by callbacks and hooks during a call ---------------------------------------
#
# While a call is in progress, an instrumented call made under it is LiteLLM's own attempt
# (a retry, a fallback, a Router attempt) unless a callback or hook made it: a user's
# guardrail, an LLM-as-judge in a success callback. Those are calls of their own. LiteLLM
# runs callbacks from its logging module (functions in `litellm.callbacks`,
# `success_callback`, ...) or as methods of a `CustomLogger`; a frame of either, found
# before the frame of the call in progress, marks a callback's call.

_LOGGING_FILE = _litellm_logging.__file__
_HOOK_NAMES = frozenset(
    name
    for name in dir(CustomLogger)
    if not name.startswith("__") and callable(getattr(CustomLogger, name))
)
_STOP: set[Any] = set()  # the code of the wrappers below: the call in progress


def _made_by_callback() -> bool:
    """Whether the instrumented call being made (two frames up) was made by a callback."""
    f: FrameType | None = _getframe(2)
    stop, hooks, logging_file = _STOP, _HOOK_NAMES, _LOGGING_FILE
    while f is not None:
        code = f.f_code
        if code in stop:
            return False
        if code.co_filename == logging_file:
            return True
        if code.co_name in hooks and isinstance(f.f_locals.get("self"), CustomLogger):
            return True
        f = f.f_back
    return False


def _own_call(wrapper: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Make a callback's call as a call of its own: the call in progress is not its."""
    __tracebackhide__ = True
    thread_call = _THREAD_CALL
    saved = thread_call.call
    thread_call.call = None
    token = IN_CALL.set(None)
    try:
        return wrapper(*args, **kwargs)
    finally:
        IN_CALL.reset(token)
        thread_call.call = saved


async def _own_acall(
    wrapper: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """`_own_call` for an asynchronous entry point."""
    __tracebackhide__ = True
    thread_call = _THREAD_CALL
    saved = thread_call.call  # set only in an event loop run inside a synchronous call
    thread_call.call = None
    token = IN_CALL.set(None)
    try:
        return await wrapper(*args, **kwargs)
    finally:
        IN_CALL.reset(token)
        thread_call.call = saved


def _noop() -> None:
    """A function to wrap, to find the wrappers' code."""


async def _anoop() -> None:
    """A coroutine function to wrap, to find the wrappers' code."""


def wrap_sync(fn: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """Wrap a synchronous litellm entry point."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # a refused or failed call's traceback ends at the user's line
        if not installed:  # uninstrumented: a name bound earlier passes straight through
            return fn(*args, **kwargs)
        outer = IN_CALL.get() or _THREAD_CALL.call
        if outer is not None:
            if _made_by_callback():
                return _own_call(wrapper, args, kwargs)
            # An attempt inside a recorded call (a retry, a fallback, a Router attempt).
            outer.attempts += 1
            injected = kwargs.get("stream") is True and _prepare(kind, args, kwargs)
            result = _call_refusable(fn, args, kwargs) if injected else fn(*args, **kwargs)
            _nested_result(outer, kind, result, args, kwargs, injected)
            return result
        if "litellm_logging_obj" in kwargs and kwargs["litellm_logging_obj"] is not None:
            # LiteLLM's own fallback runner passes the outer call's logging object (a user
            # never does): an attempt inside a recorded call whose context was lost.
            return fn(*args, **kwargs)
        frame = CURRENT.get()
        if frame is None:
            frame = DEFAULT_ROOT_FRAME
        elif frame.budgets:
            before_call(frame)
        state = CallState()
        injected = "stream" in kwargs and kwargs["stream"] is True and _prepare(kind, args, kwargs)
        started = _perf_counter()
        thread_call = _THREAD_CALL
        thread_call.call = state  # this thread is busy with the call until it returns
        try:
            result = _call_refusable(fn, args, kwargs) if injected else fn(*args, **kwargs)
        except BaseException as e:
            with _errors.internal_errors_swallowed("failure recording"):
                record_failure(frame, kind, args, kwargs, started, e)
            raise
        finally:
            thread_call.call = None
        if type(result) is _ModelResponse and state.attempts == 1 and not frame.budgets:
            try:
                if defer(frame, result, started):
                    return result
            except Exception:  # raised before queuing it: the general path records it
                _errors.log_internal_error("call recording")
        elif isinstance(result, CoroutineType):  # completion(..., acompletion=True)
            again = fn if injected else None
            return _await_and_record(
                result, frame, kind, args, kwargs, started, state, injected, again
            )
        _after(frame, kind, result, args, kwargs, started, state, injected)
        return result

    wrapper.__tokenmeter_original__ = fn  # type: ignore[attr-defined]
    return wrapper


async def _await_and_record(
    coro: Any,
    frame: Frame,
    kind: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    started: float,
    state: CallState,
    injected: bool,
    again: Callable[..., Any] | None,
) -> Any:
    token = IN_CALL.set(state)  # the call runs now: attempts inside it pass through
    try:
        result = await (coro if again is None else _await_refusable(again, args, kwargs, coro))
    except BaseException as e:
        with _errors.internal_errors_swallowed("failure recording"):
            record_failure(frame, kind, args, kwargs, started, e)
        raise
    finally:
        IN_CALL.reset(token)
    _after(frame, kind, result, args, kwargs, started, state, injected)
    return result


def wrap_async(fn: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """Wrap an asynchronous litellm entry point."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # a refused or failed call's traceback ends at the user's line
        if not installed:  # uninstrumented: a name bound earlier passes straight through
            return await fn(*args, **kwargs)
        outer = IN_CALL.get() or _THREAD_CALL.call
        if outer is not None:
            if _made_by_callback():
                return await _own_acall(wrapper, args, kwargs)
            # An attempt inside a recorded call (a retry, a fallback, a Router attempt).
            outer.attempts += 1
            injected = kwargs.get("stream") is True and _prepare(kind, args, kwargs)
            if injected:
                result = await _await_refusable(fn, args, kwargs)
            else:
                result = await fn(*args, **kwargs)
            _nested_result(outer, kind, result, args, kwargs, injected)
            return result
        if "litellm_logging_obj" in kwargs and kwargs["litellm_logging_obj"] is not None:
            # LiteLLM's own fallback runner passes the outer call's logging object (a user
            # never does): an attempt inside a recorded call whose context was lost.
            return await fn(*args, **kwargs)
        frame = CURRENT.get()
        if frame is None:
            frame = DEFAULT_ROOT_FRAME
        elif frame.budgets:
            before_call(frame)
        state = CallState()
        injected = "stream" in kwargs and kwargs["stream"] is True and _prepare(kind, args, kwargs)
        started = _perf_counter()
        token = IN_CALL.set(state)
        try:
            if injected:
                result = await _await_refusable(fn, args, kwargs)
            else:
                result = await fn(*args, **kwargs)
        except BaseException as e:
            with _errors.internal_errors_swallowed("failure recording"):
                record_failure(frame, kind, args, kwargs, started, e)
            raise
        finally:
            IN_CALL.reset(token)
        if type(result) is _ModelResponse and state.attempts == 1 and not frame.budgets:
            try:
                if defer(frame, result, started):
                    return result
            except Exception:  # raised before queuing it: the general path records it
                _errors.log_internal_error("call recording")
        _after(frame, kind, result, args, kwargs, started, state, injected)
        return result

    wrapper.__tokenmeter_original__ = fn  # type: ignore[attr-defined]
    return wrapper


_STOP.update(
    (
        wrap_sync(_noop, "completion").__code__,
        wrap_async(_anoop, "completion").__code__,
        _await_and_record.__code__,
    )
)


def wrap(fn: Callable[..., Any], kind: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):
        return wrap_async(fn, kind)
    return wrap_sync(fn, kind)
