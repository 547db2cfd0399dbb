"""Responses API streams (``responses(stream=True)``, ``aresponses``): recorded from their end.

The usage of such a stream is in its terminal event (``response.completed``, or
``response.incomplete`` / ``response.failed``), as LiteLLM billed it. The stream is
recorded when that event passes through, so a loop that stops right after it still
gets the provider's numbers; a stream closed, broken or dropped before it is
recorded with an estimate (the request's input and the text read so far).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping
from typing import Any

import litellm

from tokenmeter import _errors

from .extract import (
    attr,
    call_model,
    cost_units,
    deployment_cost,
    deployment_id,
    model_provider,
    named_arguments,
    tokens,
)
from .stream_call import StreamCall, abandoned, add_stream, claim, finish, in_call_context
from .stream_classes import add_stream_class

_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_TEXT_DELTAS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})
#: On the stream: whether its terminal event carried usage as the server sent it (LiteLLM
#: fills in an estimate of its own where it carried none, before the event is handed out).
_SERVED = "_tokenmeter_served"


def _record(
    call: StreamCall,
    terminal: Any,
    text: list[str],
    model_hint: Any,
    provider_hint: Any,
    cache_hit: bool,
    failed: bool,
    complete: bool,
    error: BaseException | None,
    served: bool | None = None,
) -> None:
    """Record a Responses stream: its terminal event's usage and bill, else an estimate.

    ``served`` False: the server's terminal event carried no usage, the usage it has is
    LiteLLM's estimate (taken, and the call counted as estimated, as a chat stream's).
    """
    name = call_model(call.kind, call.args, call.kwargs)
    if model_hint and "/" not in name:
        name = str(model_hint)
    model, provider = model_provider(name, provider_hint)
    response = attr(terminal, "response") if terminal is not None else None
    usage = attr(response, "usage") if response is not None else None
    meta: dict[str, Any] = {"stream": True}
    estimated = False
    if cache_hit:
        toks = (0, 0, 0, 0, 0)
        cost: int | None = 0
        meta["cache_hit"] = True
    elif usage is not None:
        toks = tokens(usage)
        given = attr(usage, "cost")
        if given is None:  # LiteLLM 1.90 bills none on the event: a deployment's own prices
            given = deployment_cost(name, provider, deployment_id(call.kwargs), toks)
        cost = cost_units(model, provider, given, toks)
        estimated = served is False
    else:
        toks = _estimate(model, named_arguments(call.kind, call.args, call.kwargs), "".join(text))
        # At a Router deployment's own prices, if it has any, as for a call answered whole.
        given = deployment_cost(name, provider, deployment_id(call.kwargs), toks)
        cost = cost_units(model, provider, given, toks)
        estimated = True
    if str(attr(terminal, "type", "")) == "response.failed":
        failed = True
    add_stream(call, model, provider, toks, cost, failed, estimated, complete, error, {}, meta)


def _estimate(model: str, kwargs: Mapping[str, Any], text: str) -> tuple[int, int, int, int, int]:
    """LiteLLM's token counts of the request's input and of the text streamed so far."""
    try:
        given = kwargs.get("input")
        if isinstance(given, str):
            i = litellm.token_counter(model=model, text=given)
        elif isinstance(given, list):
            messages = [m for m in given if isinstance(m, dict) and "content" in m]
            i = litellm.token_counter(model=model, messages=messages) if messages else 0
        else:
            i = 0
        o = litellm.token_counter(model=model, text=text) if text else 0
        return int(i), int(o), 0, 0, 0
    except Exception:
        return 0, 0, 0, 0, 0


def _finish(stream: Any, call: StreamCall, terminal: Any, failed: bool, complete: bool,
            error: BaseException | None) -> None:  # fmt: skip
    finish(call, _record_from, stream, call, terminal, failed, complete, error)


def _record_from(stream: Any, call: StreamCall, terminal: Any, failed: bool, complete: bool,
                 error: BaseException | None) -> None:  # fmt: skip
    """Record a Responses stream that ended (claimed, errors swallowed)."""
    _record(
        call,
        terminal,
        call.text,
        getattr(stream, "model", None),
        getattr(stream, "custom_llm_provider", None),
        bool(getattr(stream, "_completed_response_cache_hit", False)),
        failed,
        complete,
        error,
        stream.__dict__.get(_SERVED),
    )


def _record_abandoned(call: StreamCall, model: Any, provider: Any) -> None:
    """A Responses stream dropped before its terminal event."""
    if claim(call):
        text = call.text
        in_call_context(call, _record, call, None, text, model, provider, False, False, False, None)


def _attach(stream: Any, call: StreamCall) -> None:
    call.finalizer = weakref.finalize(
        stream,
        abandoned,
        _record_abandoned,
        call,
        getattr(stream, "model", None),
        getattr(stream, "custom_llm_provider", None),
    )
    call.finalizer.atexit = False


def _seen(stream: Any, call: StreamCall, event: Any) -> None:
    """An event passed through: keep its text; at the terminal event, record the stream."""
    kind = getattr(event, "type", None)
    if kind in _TEXT_DELTAS:
        delta = getattr(event, "delta", None)
        if isinstance(delta, str):
            call.text.append(delta)
    elif kind in _TERMINAL:
        _finish(stream, call, event, False, True, None)


def _patch(cls: Any, originals: dict[tuple[object, str], Any]) -> None:
    """Wrap the iteration and closing methods ``cls`` defines itself."""
    own = cls.__dict__
    wrapped: dict[str, Any] = {}
    if "__next__" in own:
        orig_next = own["__next__"]

        def __next__(self: Any) -> Any:
            call: StreamCall | None = self.__dict__.get("_tokenmeter_call")
            if call is None or not call.open:
                return orig_next(self)
            call.in_next = True
            try:
                event = orig_next(self)
            except StopIteration:
                _finish(self, call, None, False, True, None)
                raise
            except BaseException as e:
                _finish(self, call, None, True, False, e)
                raise
            finally:
                call.in_next = False
            with _errors.internal_errors_swallowed("stream recording"):
                _seen(self, call, event)
            return event

        wrapped["__next__"] = __next__
    if "__anext__" in own:
        orig_anext = own["__anext__"]

        async def __anext__(self: Any) -> Any:
            call: StreamCall | None = self.__dict__.get("_tokenmeter_call")
            if call is None or not call.open:
                return await orig_anext(self)
            call.in_next = True
            try:
                event = await orig_anext(self)
            except StopAsyncIteration:
                _finish(self, call, None, False, True, None)
                raise
            except BaseException as e:
                _finish(self, call, None, True, False, e)
                raise
            finally:
                call.in_next = False
            with _errors.internal_errors_swallowed("stream recording"):
                _seen(self, call, event)
            return event

        wrapped["__anext__"] = __anext__
    if "close" in own:
        orig_close = own["close"]

        def close(self: Any) -> None:
            call: StreamCall | None = self.__dict__.get("_tokenmeter_call")
            try:
                return orig_close(self)  # type: ignore[no-any-return]
            finally:
                if call is not None and call.open and not call.in_next:
                    _finish(self, call, None, False, False, None)

        wrapped["close"] = close
    if "aclose" in own:
        orig_aclose = own["aclose"]

        async def aclose(self: Any) -> None:
            call: StreamCall | None = self.__dict__.get("_tokenmeter_call")
            try:
                return await orig_aclose(self)  # type: ignore[no-any-return]
            finally:
                if call is not None and call.open and not call.in_next:
                    _finish(self, call, None, False, False, None)

        wrapped["aclose"] = aclose
    for name, fn in wrapped.items():
        originals[(cls, name)] = own[name]
        fn.__qualname__ = f"{cls.__name__}.{name}"
        setattr(cls, name, fn)


def _served_usage(raw: Any) -> bool | None:
    """Whether a terminal event, as the server sent it (JSON text), carries usage; None if
    it cannot be read."""
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        raw = raw.strip()
        if raw.startswith("data:"):  # LiteLLM before 1.8x hands the SSE line over whole
            raw = raw[5:]
        raw = json.loads(raw)
    response = raw.get("response") if isinstance(raw, dict) else None
    if not isinstance(response, dict):
        return None
    return isinstance(response.get("usage"), dict)


def _patch_events(base: Any, originals: dict[tuple[object, str], Any]) -> None:
    """Wrap ``base._process_chunk`` (server's event in, LiteLLM's event out), where it has
    one: at a terminal event, note whether the server's carried usage (`_SERVED`)."""
    orig = base.__dict__.get("_process_chunk")
    if orig is None:
        return

    def _process_chunk(self: Any, chunk: Any, *args: Any, **kwargs: Any) -> Any:
        event = orig(self, chunk, *args, **kwargs)
        if event is not None and "_tokenmeter_call" in self.__dict__:
            kind = getattr(event, "type", None)
            if kind in _TERMINAL:
                with _errors.internal_errors_swallowed("stream recording"):
                    self.__dict__[_SERVED] = _served_usage(chunk)
        return event

    originals[(base, "_process_chunk")] = orig
    _process_chunk.__qualname__ = f"{base.__name__}._process_chunk"
    base._process_chunk = _process_chunk


def patch_responses_streams(originals: dict[tuple[object, str], Any]) -> None:
    """Record LiteLLM's Responses API streams (every iterator class it has)."""
    from litellm.responses import streaming_iterator as it

    base = it.BaseResponsesAPIStreamingIterator
    add_stream_class(base, _attach)
    _patch_events(base, originals)
    for name in (
        "ResponsesAPIStreamingIterator",
        "SyncResponsesAPIStreamingIterator",
        "MockResponsesAPIStreamingIterator",
        "CachedResponsesAPIStreamingIterator",
    ):
        cls = getattr(it, name, None)
        if isinstance(cls, type) and issubclass(cls, base):
            _patch(cls, originals)
