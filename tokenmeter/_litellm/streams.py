"""Streams: recorded when exhausted, closed, broken or garbage collected."""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import litellm

from tokenmeter import _errors, _events
from tokenmeter._pricing import custom_price_for, price_tokens
from tokenmeter._tree import Frame
from tokenmeter._usage import cost_to_units

from .extract import _int, _model_provider, _requested_model, _tokens
from .record import _add

_stream_class: type | None = None


def _is_stream(result: object) -> bool:
    return _stream_class is not None and isinstance(result, _stream_class)


class StreamCall:
    """What a stream needs to be recorded on the caller's scope when it ends."""

    __slots__ = (
        "args",
        "context",
        "done",
        "finalizer",
        "frame",
        "in_next",
        "kind",
        "kwargs",
        "started",
    )

    def __init__(
        self,
        frame: Frame,
        kind: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        started: float,
    ) -> None:
        self.frame = frame
        self.kind = kind
        self.args = args
        self.kwargs = kwargs
        self.started = started
        self.done = False
        self.in_next = False
        self.finalizer: weakref.finalize[Any, Any] | None = None
        # Observers see a stream in (a copy of) the context its call was made in.
        self.context = contextvars.copy_context() if _events.OBSERVERS else None


_stream_lock = threading.Lock()


def _claim(call: StreamCall) -> bool:
    with _stream_lock:
        if call.done:
            return False
        call.done = True
    if call.finalizer is not None:
        call.finalizer.detach()
    return True


def _finish_stream(
    call: StreamCall,
    chunks: list[Any],
    messages: object,
    hp: Mapping[str, Any],
    model_hint: str | None,
    provider_hint: str | None,
    failed: bool,
    complete: bool,
    error: BaseException | None = None,
) -> None:
    """Record a stream: provider usage if any chunk carried it, else LiteLLM's estimate."""
    name = hp.get("litellm_model_name") or model_hint or _requested_model(call.args, call.kwargs)
    model, provider = _model_provider(str(name), provider_hint or hp.get("custom_llm_provider"))
    usage: Any = None
    for chunk in reversed(chunks):
        u = getattr(chunk, "usage", None)
        if u is not None and (
            _int(getattr(u, "prompt_tokens", None)) or _int(getattr(u, "completion_tokens", None))
        ):
            usage = u
            break
    estimated = usage is None
    if usage is None:
        try:
            built = litellm.stream_chunk_builder(
                chunks=list(chunks), messages=messages if isinstance(messages, list) else None
            )
            usage = getattr(built, "usage", None)
        except Exception:
            usage = None
    toks = _tokens(usage) if usage is not None else (0, 0, 0, 0, 0)
    custom = custom_price_for(model, provider)
    if custom is not None:
        cost: int | None = cost_to_units(custom.cost(toks[0], toks[1], toks[2], toks[3]))
    else:
        c = price_tokens(model, provider, *toks)
        cost = None if c is None else cost_to_units(c)
    meta: dict[str, Any] = {"stream": True}
    if not complete:
        meta["abandoned"] = True
    if error is not None:
        meta["error"] = type(error).__name__
    _add(
        call.frame,
        call.kind,
        model,
        provider,
        toks,
        cost,
        failed,
        estimated or not complete,
        call.started,
        hp,
        meta,
    )


def _finish_from(stream: Any, call: StreamCall, failed: bool, complete: bool, error: Any) -> None:
    if not _claim(call):
        return
    with _errors.internal_errors_swallowed("stream recording"):
        _in_call_context(
            call,
            _finish_stream,
            call,
            getattr(stream, "chunks", None) or [],
            getattr(stream, "messages", None),
            getattr(stream, "_hidden_params", None) or {},
            getattr(stream, "model", None),
            getattr(stream, "custom_llm_provider", None),
            failed,
            complete,
            error,
        )


def _abandoned(
    call: StreamCall, chunks: list[Any], messages: object, hp: Any, m: Any, p: Any
) -> None:
    """weakref.finalize callback: a stream dropped before it ended."""
    if not _claim(call):
        return
    with _errors.internal_errors_swallowed("abandoned stream recording"):
        _in_call_context(call, _finish_stream, call, chunks, messages, hp or {}, m, p, False, False)


def _in_call_context(call: StreamCall, fn: Callable[..., None], *args: Any) -> None:
    """Run ``fn`` in the context captured when ``call`` was made, if one was."""
    if call.context is None:
        fn(*args)
    else:
        call.context.run(fn, *args)


def _attach_stream(stream: Any, call: StreamCall) -> None:
    stream._tokenmeter_call = call
    call.finalizer = weakref.finalize(
        stream,
        _abandoned,
        call,
        stream.chunks,
        getattr(stream, "messages", None),
        getattr(stream, "_hidden_params", None),
        getattr(stream, "model", None),
        getattr(stream, "custom_llm_provider", None),
    )
    call.finalizer.atexit = False


def _patch_stream_class(cls: Any, originals: dict[tuple[object, str], Any]) -> None:
    """Wrap ``cls``'s iteration and closing; the replaced methods go into ``originals``."""
    global _stream_class
    _stream_class = cls
    orig_next = cls.__next__
    orig_anext = cls.__anext__
    # LiteLLM before 1.107 has no close/aclose on its stream class: only what it has is wrapped.
    orig_close: Any = getattr(cls, "close", None)
    orig_aclose: Any = getattr(cls, "aclose", None)

    def __next__(self: Any) -> Any:
        call: StreamCall | None = self.__dict__.get("_tokenmeter_call")
        if call is None or call.done:
            return orig_next(self)
        call.in_next = True
        try:
            return orig_next(self)
        except StopIteration:
            _finish_from(self, call, False, True, None)
            raise
        except BaseException as e:
            _finish_from(self, call, True, False, e)
            raise
        finally:
            call.in_next = False

    async def __anext__(self: Any) -> Any:
        call: StreamCall | None = self.__dict__.get("_tokenmeter_call")
        if call is None or call.done:
            return await orig_anext(self)
        call.in_next = True
        try:
            return await orig_anext(self)
        except StopAsyncIteration:
            _finish_from(self, call, False, True, None)
            raise
        except BaseException as e:
            _finish_from(self, call, True, False, e)
            raise
        finally:
            call.in_next = False

    def close(self: Any) -> None:
        call: StreamCall | None = self.__dict__.get("_tokenmeter_call")
        try:
            return orig_close(self)  # type: ignore[no-any-return]
        finally:
            if call is not None and not call.done and not call.in_next:
                _finish_from(self, call, False, False, None)

    async def aclose(self: Any) -> None:
        call: StreamCall | None = self.__dict__.get("_tokenmeter_call")
        try:
            return await orig_aclose(self)  # type: ignore[no-any-return]
        finally:
            if call is not None and not call.done and not call.in_next:
                _finish_from(self, call, False, False, None)

    for name, fn in (
        ("__next__", __next__),
        ("__anext__", __anext__),
        ("close", close),
        ("aclose", aclose),
    ):
        if name not in cls.__dict__:
            continue
        originals[(cls, name)] = cls.__dict__[name]
        fn.__qualname__ = f"{cls.__name__}.{name}"
        setattr(cls, name, fn)


def _hide_usage_chunk(stream: Any) -> None:
    # The caller did not ask for a usage chunk: keep the stream looking as it would
    # have (LiteLLM then keeps the provider's usage in .chunks without yielding it).
    if hasattr(stream, "send_stream_usage") and hasattr(stream, "stream_options"):
        stream.send_stream_usage = False
        stream.stream_options = None
