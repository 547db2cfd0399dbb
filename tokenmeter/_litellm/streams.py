"""Streams: recorded when exhausted, closed, broken or garbage collected."""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import litellm
from litellm.types.utils import ModelResponse as _ModelResponse
from litellm.types.utils import Usage as _LiteLLMUsage

from tokenmeter._drain import drain_queued

from .extract import (
    cost_units,
    deployment_cost,
    deployment_id,
    model_provider,
    requested_model,
    tokens,
)
from .stream_call import (
    ABANDONED,
    StreamCall,
    abandoned,
    add_stream,
    claim,
    finish,
    in_call_context,
)
from .stream_classes import ATTACHERS, add_stream_class
from .stream_exit import opened
from .stream_usage import usage_in, usage_only

#: The provider LiteLLM names on a stream its cache serves.
CACHED = "cached_response"


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
    logging_obj: Any = None,
    final_usage: Any = None,
) -> None:
    """Record a stream: provider usage if any chunk carried it, else LiteLLM's estimate."""
    if provider_hint == CACHED:
        # LiteLLM's cache served it: free, as the same call's cache hit unstreamed (the
        # chunks replay the usage of the call that filled the cache).
        model, provider = model_provider(requested_model(call.args, call.kwargs), None)
        add_stream(call, model, provider, (0, 0, 0, 0, 0), 0, failed, False, complete, error,
                   hp, {"stream": True, "cache_hit": True})  # fmt: skip
        return
    name = hp.get("litellm_model_name") or model_hint or requested_model(call.args, call.kwargs)
    model, provider = model_provider(str(name), provider_hint or hp.get("custom_llm_provider"))
    usage = usage_in(chunks)
    estimated = usage is None
    if usage is None:
        # No usage chunk: at the end of a stream LiteLLM has estimated it already (its
        # stream_chunk_builder); otherwise a cheap estimate of the text read so far.
        usage = final_usage if usage_in([_Carrier(final_usage)]) is not None else None
    toks = _estimate_text(model, chunks, messages) if usage is None else tokens(usage)
    # Priced as LiteLLM prices the same call unstreamed: its logging object knows the
    # call's own prices (``input_cost_per_token=...``, a Router deployment's). An estimate
    # whose logging object is gone (a stream dropped and collected) is priced at a Router
    # deployment's own prices, if it has any, as a call answered whole.
    given = _litellm_cost(logging_obj, name, usage, toks)
    if given is None and usage is None:
        given = deployment_cost(str(name), provider, deployment_id(call.kwargs), toks)
    cost = cost_units(model, provider, given, toks)
    add_stream(call, model, provider, toks, cost, failed, estimated or not complete, complete,
               error, hp, {"stream": True})  # fmt: skip


def _litellm_cost(
    logging_obj: Any, name: object, usage: Any, toks: tuple[int, int, int, int, int]
) -> float | None:
    """LiteLLM's cost of a call with this usage, by the call's logging object; None if none."""
    if logging_obj is None:
        return None
    try:
        if usage is None:
            usage = _LiteLLMUsage(prompt_tokens=toks[0], completion_tokens=toks[1])
        cost = logging_obj.response_cost_calculator(
            result=_ModelResponse(model=str(name), usage=usage)
        )
    except Exception:
        return None
    return float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None


class _Carrier:
    """Something with a ``usage`` attribute, for `usage_in`."""

    __slots__ = ("usage",)

    def __init__(self, usage: Any) -> None:
        self.usage = usage


def _estimate_text(
    model: str, chunks: list[Any], messages: object
) -> tuple[int, int, int, int, int]:
    """LiteLLM's token counts of the prompt and of the text (and tool arguments) streamed.

    One pass over the chunks and one count of the joined text: cheap next to rebuilding
    the whole response (``stream_chunk_builder``), which takes hundreds of milliseconds
    on a long stream.
    """
    parts: list[str] = []
    append = parts.append
    try:
        for chunk in chunks:
            for choice in getattr(chunk, "choices", None) or ():
                delta = getattr(choice, "delta", None)
                content = getattr(delta, "content", None)
                if content.__class__ is str:
                    append(content)
                for tool in getattr(delta, "tool_calls", None) or ():
                    arguments = getattr(getattr(tool, "function", None), "arguments", None)
                    if isinstance(arguments, str):
                        append(arguments)
        prompt = messages if isinstance(messages, list) else None
        i = litellm.token_counter(model=model, messages=prompt) if prompt else 0
        text = "".join(parts)
        o = litellm.token_counter(model=model, text=text, count_response_tokens=True) if text else 0
        return int(i), int(o), 0, 0, 0
    except Exception:
        return 0, 0, 0, 0, 0


def _finishes(chunk: Any) -> bool:
    """Whether ``chunk`` carries a finish_reason (the text is complete)."""
    try:
        choices = chunk.choices
        return bool(choices) and choices[0].finish_reason is not None
    except Exception:
        return False


# At the finish chunk of a stream that asked for usage, at most this many chunks are read
# ahead for the usage chunk (a consumer that stops at the finish chunk never pulls it).
READ_AHEAD = 8


class _Ended:
    """The end of a stream read ahead: the exception its next chunk raised."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _should_read_ahead(stream: Any, call: StreamCall, chunk: Any) -> bool:
    return call.want_usage and _finishes(chunk) and usage_in(stream.chunks) is None


def _ended(stream: Any, call: StreamCall, ahead: deque[Any], e: BaseException) -> None:
    """The stream ended while read ahead: record it now, hand the end out later."""
    ahead.append(_Ended(e))
    stop = isinstance(e, (StopIteration, StopAsyncIteration))
    _finish_from(stream, call, not stop, stop, None if stop else e)


def _replay(call: StreamCall, ahead: deque[Any]) -> Any:
    item = ahead.popleft()
    if not ahead:
        call.ahead = None
    if type(item) is _Ended:
        raise item.error
    return item


def _finish_from(stream: Any, call: StreamCall, failed: bool, complete: bool, error: Any) -> None:
    finish(call, _record_from, stream, call, failed, complete, error)


def _record_from(stream: Any, call: StreamCall, failed: bool, complete: bool, error: Any) -> None:
    """Record a chat stream that ended (claimed, errors swallowed): what it holds now."""
    _finish_stream(
        call,
        getattr(stream, "chunks", None) or [],
        getattr(stream, "messages", None),
        getattr(stream, "_hidden_params", None) or {},
        getattr(stream, "model", None),
        _provider_of(stream),
        failed,
        complete,
        error,
        getattr(stream, "logging_obj", None),
        _final_usage(stream) if complete else None,
    )


def _provider_of(stream: Any) -> Any:
    """The provider LiteLLM resolved for a stream's call, as its unstreamed answer names it.

    The stream's own ``custom_llm_provider`` names the handler that made it (``openai``
    for every mock stream, whatever the model); LiteLLM labels the chunks with its logging
    object's provider instead, and so does tokenmeter. A cache hit keeps its
    ``cached_response``.
    """
    provider = getattr(stream, "custom_llm_provider", None)
    if provider == CACHED:
        return provider
    details = getattr(getattr(stream, "logging_obj", None), "model_call_details", None)
    resolved = details.get("custom_llm_provider") if isinstance(details, dict) else None
    return resolved if isinstance(resolved, str) and resolved else provider


def _final_usage(stream: Any) -> Any:
    """The usage LiteLLM computed at the end of a stream without a usage chunk, if any."""
    hidden = getattr(stream, "_last_returned_hidden_params", None)
    return hidden.get("usage") if isinstance(hidden, dict) else None


def _record_abandoned(
    call: StreamCall, chunks: list[Any], messages: object, hp: Any, m: Any, p: Any, log: Any
) -> None:
    """A chat stream dropped before it ended, with the chunks it had read."""
    if claim(call):
        args = (call, chunks, messages, hp or {}, m, p, False, False, None, log())
        in_call_context(call, _finish_stream, *args)


def attach_stream(stream: Any, call: StreamCall) -> None:
    if ABANDONED:
        drain_queued()
    stream.__dict__["_tokenmeter_call"] = call  # read back the same way, by the wrappers
    for cls, attach in ATTACHERS:
        if isinstance(stream, cls):
            attach(stream, call)
            opened(call, stream)
            return
    call.finalizer = weakref.finalize(
        stream,
        abandoned,
        _record_abandoned,
        call,
        stream.chunks,
        getattr(stream, "messages", None),
        getattr(stream, "_hidden_params", None),
        getattr(stream, "model", None),
        _provider_of(stream),
        _weak(getattr(stream, "logging_obj", None)),
    )
    call.finalizer.atexit = False
    opened(call, stream)


def _weak(obj: Any) -> Callable[[], Any]:
    """A weak reference to ``obj`` (the logging object refers back to its stream: a strong
    one held by the finalizer would keep the stream alive)."""
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: None


def patch_stream_class(cls: Any, originals: dict[tuple[object, str], Any]) -> None:
    """Wrap ``cls``'s iteration and closing; the replaced methods go into ``originals``."""
    add_stream_class(cls)
    orig_next = cls.__next__
    orig_anext = cls.__anext__
    # LiteLLM before 1.107 has no close/aclose on its stream class: only what it has is wrapped.
    orig_close: Any = getattr(cls, "close", None)
    orig_aclose: Any = getattr(cls, "aclose", None)

    def pull(self: Any) -> Any:
        chunk = orig_next(self)
        if self.__dict__.get("_tokenmeter_skip_usage"):
            while usage_only(chunk):
                chunk = orig_next(self)
        return chunk

    async def apull(self: Any) -> Any:
        chunk = await orig_anext(self)
        if self.__dict__.get("_tokenmeter_skip_usage"):
            while usage_only(chunk):
                chunk = await orig_anext(self)
        return chunk

    def read_ahead(self: Any, call: StreamCall) -> None:
        ahead: deque[Any] = deque()
        call.ahead = ahead
        for _ in range(READ_AHEAD):
            try:
                ahead.append(pull(self))
            except Exception as e:  # StopIteration included
                _ended(self, call, ahead, e)
                return
            except BaseException as e:  # KeyboardInterrupt, ...: not held back
                call.ahead = None
                _finish_from(self, call, True, False, e)
                raise
        if not ahead:
            call.ahead = None

    async def aread_ahead(self: Any, call: StreamCall) -> None:
        ahead: deque[Any] = deque()
        call.ahead = ahead
        for _ in range(READ_AHEAD):
            try:
                ahead.append(await apull(self))
            except Exception as e:  # StopAsyncIteration included
                _ended(self, call, ahead, e)
                return
            except BaseException as e:  # cancelled: not held back
                call.ahead = None
                _finish_from(self, call, True, False, e)
                raise
        if not ahead:
            call.ahead = None

    def __next__(self: Any) -> Any:
        call: StreamCall | None = self.__dict__.get("_tokenmeter_call")
        if call is None:
            return pull(self)
        ahead = call.ahead
        if ahead is not None:
            return _replay(call, ahead)
        if not call.open:
            return pull(self)
        call.in_next = True
        try:
            chunk = pull(self)
            if call.want_usage and _should_read_ahead(self, call, chunk):
                read_ahead(self, call)
            return chunk
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
        if call is None:
            return await apull(self)
        ahead = call.ahead
        if ahead is not None:
            return _replay(call, ahead)
        if not call.open:
            return await apull(self)
        call.in_next = True
        try:
            chunk = await apull(self)
            if call.want_usage and _should_read_ahead(self, call, chunk):
                await aread_ahead(self, call)
            return chunk
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
            if call is not None and call.open and not call.in_next:
                _finish_from(self, call, False, False, None)

    async def aclose(self: Any) -> None:
        call: StreamCall | None = self.__dict__.get("_tokenmeter_call")
        try:
            return await orig_aclose(self)  # type: ignore[no-any-return]
        finally:
            if call is not None and call.open and not call.in_next:
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


def hide_usage_chunk(stream: Any) -> None:
    # The caller did not ask for a usage chunk: keep the stream looking as it would
    # have (LiteLLM then keeps the provider's usage in .chunks without yielding it).
    if not hasattr(type(stream), "_record_usage_only_chunk"):
        # LiteLLM before 1.106 drops the usage chunk from .chunks when it is not to be
        # yielded: it is yielded (and kept), and the wrapped iteration skips it.
        stream._tokenmeter_skip_usage = True
        return
    if hasattr(stream, "send_stream_usage") and hasattr(stream, "stream_options"):
        stream.send_stream_usage = False
        stream.stream_options = None
