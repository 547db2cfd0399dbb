"""Text completion streams (``text_completion(stream=True)``): recorded when they end.

LiteLLM's text stream wrapper reads a stream of its own (the OpenAI SDK's, for OpenAI's
``/v1/completions``) that tokenmeter does not see: the wrapper's own iteration is wrapped.
The usage is a chunk's, where the caller asked for one (``stream_options``), else an
estimate of the request's prompt and the text streamed so far.
"""

from __future__ import annotations

import weakref
from typing import Any

from tokenmeter import _errors

from .extract import (
    attr,
    call_model,
    cost_units,
    deployment_cost,
    deployment_id,
    estimate_text,
    model_provider,
    named_arguments,
    tokens,
)
from .stream_call import StreamCall, abandoned, add_stream, claim, finish, in_call_context
from .stream_classes import add_stream_class

_USAGE = "_tokenmeter_usage"  # on the stream: a list holding the last usage a chunk carried


def _record(
    call: StreamCall, usage: Any, failed: bool, complete: bool, error: BaseException | None
) -> None:
    name = call_model(call.kind, call.args, call.kwargs)
    model, provider = model_provider(name, None)
    estimated = usage is None
    if estimated:
        toks = estimate_text(model, named_arguments(call.kind, call.args, call.kwargs),
                             "".join(call.text))  # fmt: skip
    else:
        toks = tokens(usage)
    # At a Router deployment's own prices, if it has any, as for a call answered whole.
    given = deployment_cost(name, provider, deployment_id(call.kwargs), toks)
    cost = cost_units(model, provider, given, toks)
    add_stream(call, model, provider, toks, cost, failed, estimated or not complete, complete,
               error, {}, {"stream": True})  # fmt: skip


def _last(seen: list[Any]) -> Any:
    return seen[-1] if seen else None


def _finish(stream: Any, call: StreamCall, failed: bool, complete: bool, error: Any) -> None:
    finish(call, _record_from, stream, call, failed, complete, error)


def _record_from(stream: Any, call: StreamCall, failed: bool, complete: bool, error: Any) -> None:
    _record(call, _last(stream.__dict__.get(_USAGE) or []), failed, complete, error)


def _record_abandoned(call: StreamCall, seen: list[Any]) -> None:
    """A text stream dropped before it ended."""
    if claim(call):
        in_call_context(call, _record, call, _last(seen), False, False, None)


def _attach(stream: Any, call: StreamCall) -> None:
    seen: list[Any] = []
    stream.__dict__[_USAGE] = seen
    call.finalizer = weakref.finalize(stream, abandoned, _record_abandoned, call, seen)
    call.finalizer.atexit = False


def _seen(stream: Any, call: StreamCall, chunk: Any) -> None:
    """A chunk passed through: keep its text, and its usage if it carries one."""
    for choice in attr(chunk, "choices") or ():
        text = getattr(choice, "text", None)
        if isinstance(text, str):
            call.text.append(text)
    usage = attr(chunk, "usage")
    if usage is not None and any(tokens(usage)[:2]):
        stream.__dict__[_USAGE].append(usage)


def patch_text_stream(originals: dict[tuple[object, str], Any]) -> None:
    """Record LiteLLM's text completion streams (its TextCompletionStreamWrapper)."""
    try:
        from litellm.text_completions.streaming_iterator import TextCompletionStreamWrapper as cls
    except ImportError:  # LiteLLM before the module was split out
        from litellm.utils import TextCompletionStreamWrapper as cls
    add_stream_class(cls, _attach)
    own = cls.__dict__
    orig_next = own["__next__"]
    orig_anext = own["__anext__"]

    def __next__(self: Any) -> Any:
        call: StreamCall | None = self.__dict__.get("_tokenmeter_call")
        if call is None or not call.open:
            return orig_next(self)
        call.in_next = True
        try:
            chunk = orig_next(self)
        except StopIteration:
            _finish(self, call, False, True, None)
            raise
        except BaseException as e:
            _finish(self, call, True, False, e)
            raise
        finally:
            call.in_next = False
        with _errors.internal_errors_swallowed("stream recording"):
            _seen(self, call, chunk)
        return chunk

    async def __anext__(self: Any) -> Any:
        call: StreamCall | None = self.__dict__.get("_tokenmeter_call")
        if call is None or not call.open:
            return await orig_anext(self)
        call.in_next = True
        try:
            chunk = await orig_anext(self)
        except StopAsyncIteration:
            _finish(self, call, False, True, None)
            raise
        except BaseException as e:
            _finish(self, call, True, False, e)
            raise
        finally:
            call.in_next = False
        with _errors.internal_errors_swallowed("stream recording"):
            _seen(self, call, chunk)
        return chunk

    for name, fn in (("__next__", __next__), ("__anext__", __anext__)):
        originals[(cls, name)] = own[name]
        fn.__qualname__ = f"{cls.__name__}.{name}"
        setattr(cls, name, fn)
