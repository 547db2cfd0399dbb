"""Automatic attribution of LiteLLM calls to the scope that made them.

LiteLLM's public entry points (``litellm.completion``, ``acompletion``,
``embedding``, ... and the ``Router`` methods) are wrapped. The wrapper reads
the current frame in the caller's thread and context, checks budgets before the
call starts, and records the result on that frame before returning it: counted
at once (`record_result`), or, for a plain response, queued on the meter and
counted by the meter's next reading (`_defer`, `_apply`), so a report taken
right after a call already includes it. While a call is in progress it is
marked (``THREAD_CALL`` for a synchronous call, ``IN_CALL`` for an asynchronous
one): LiteLLM's own retries, fallbacks and Router attempts made inside it pass
through and the call is recorded once.

Streams (``CustomStreamWrapper``) are recorded when exhausted, closed, broken
or garbage collected, on the scope where the call was made, whoever consumes
them. This module imports litellm; ``tokenmeter._instrument`` loads it only once
litellm itself is imported.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from itertools import groupby, repeat
from operator import add, attrgetter, gt, itemgetter, methodcaller, mul
from types import CoroutineType
from typing import Any

import litellm
from litellm.types.utils import ModelResponse as _ModelResponse
from litellm.types.utils import Usage as _LiteLLMUsage
from pydantic import BaseModel

from . import _errors, _events, _meter
from ._acc import (
    CACHE_READ,
    CACHE_WRITE,
    CALLS,
    COST,
    COST_SCALE,
    INPUT,
    OUTPUT,
    REASONING,
    add_acc,
)
from ._meter import DEFAULT_METER, PENDING_BATCH, Meter, _one_call_acc
from ._pricing import _custom as _custom_prices
from ._pricing import custom_price_for, litellm_knows, price_tokens
from ._record import CallRecord
from ._scope import CURRENT, IN_CALL, Frame, before_call
from ._scope import THREAD_CALL as _THREAD_CALL
from ._usage import cost_to_units

#: Public litellm functions wrapped, and the record kind each produces.
FUNCTIONS: dict[str, str] = {
    "completion": "completion",
    "acompletion": "completion",
    "text_completion": "text_completion",
    "atext_completion": "text_completion",
    "embedding": "embedding",
    "aembedding": "embedding",
    "image_generation": "image_generation",
    "aimage_generation": "image_generation",
    "transcription": "transcription",
    "atranscription": "transcription",
    "speech": "speech",
    "aspeech": "speech",
    "rerank": "rerank",
    "arerank": "rerank",
    "responses": "responses",
    "aresponses": "responses",
    "moderation": "moderation",
    "amoderation": "moderation",
    # Public too; LiteLLM's own num_retries path enters them nested (counted as attempts).
    "completion_with_retries": "completion",
    "acompletion_with_retries": "completion",
}
#: Kinds whose responses carry chat-style token usage (estimated when missing).
_TOKEN_KINDS = frozenset({"completion", "text_completion", "responses"})

_perf_counter = time.perf_counter
_time = time.time

_originals: dict[tuple[object, str], Any] = {}
_router_patched: list[str] = []
_lock = threading.Lock()
_settings = {"request_stream_usage": True}


def _sync_settings() -> None:
    from ._instrument import _stream_usage

    _settings["request_stream_usage"] = _stream_usage[0]


class CallState:
    """The state of an instrumented call in progress, the value of ``IN_CALL`` meanwhile.

    LiteLLM's own retries, fallbacks and Router attempts inside the call find it,
    pass through, and count here. Class attributes are the defaults, so making
    one is a bare allocation.
    """

    attempts = 1  # the call itself; attempts inside it add to this
    streams = 0  # streams attached by attempts inside it
    # (model name, provider, response_cost) of the inner attempt that answered.
    answered: tuple[Any, Any, Any] | None = None


# -- settings ---------------------------------------------------------------------------


def request_stream_usage(enabled: bool = True) -> None:
    """Ask providers for a final usage chunk on streams (``stream_options.include_usage``).

    On by default: tokenmeter adds ``stream_options={"include_usage": True}`` to
    streaming chat calls that set no ``stream_options`` of their own, when the
    provider accepts it, and keeps the stream looking as it would have (the
    usage chunk is not yielded to you). The usage is then the provider's. Off,
    requests are left untouched, and a stream whose provider sends no usage is
    recorded with LiteLLM's estimate, flagged in ``estimated_calls``.
    """
    _settings["request_stream_usage"] = bool(enabled)


# -- extraction -------------------------------------------------------------------------


def _int(value: object) -> int:
    """A token count as LiteLLM gives it: a positive int (a bool as 0 or 1), else 0."""
    if type(value) is int:
        return value if value > 0 else 0
    return 1 if value is True else 0


#: (class, name) -> whether normal attribute lookup can find ``name`` on the class.
_on_class: dict[tuple[type, str], bool] = {}


def _attr(obj: object, name: str, default: Any = None) -> Any:
    """``getattr(obj, name, default)``, without pydantic's slow path.

    LiteLLM's responses and usage objects are pydantic models: a private attribute
    (``_hidden_params``), an extra (``usage``) or a missing one (most providers'
    ``cache_read_input_tokens``) goes through pydantic's ``__getattr__``, and a
    missing one raises twice: microseconds a lookup, several lookups a call. Read
    the dicts that ``__getattr__`` would read, directly.
    """
    if isinstance(obj, BaseModel):
        fields = obj.__dict__  # a model's __dict__ holds its fields, and only them
        if name in fields:
            return fields[name]
        cls = type(obj)
        found = _on_class.get((cls, name))
        if found is None:
            found = _on_class[(cls, name)] = any(name in vars(k) for k in cls.__mro__)
        if not found:
            for more in (obj.__pydantic_private__, obj.__pydantic_extra__):
                if more and name in more:
                    return more[name]
            return default
    return getattr(obj, name, default)


def _tokens(usage: object) -> tuple[int, int, int, int, int]:
    """(input, output, cache_read, cache_write, reasoning) from a LiteLLM usage object."""
    if type(usage) is _LiteLLMUsage:
        return _chat_tokens(usage)
    g = _attr
    i = g(usage, "prompt_tokens", None)
    if i is None:
        i = g(usage, "input_tokens", 0)  # Responses API naming
    o = g(usage, "completion_tokens", None)
    if o is None:
        o = g(usage, "output_tokens", 0)
    i, o = _int(i), _int(o)
    details = g(usage, "prompt_tokens_details", None) or g(usage, "input_tokens_details", None)
    cr = _int(g(usage, "cache_read_input_tokens", 0))
    if not cr and details is not None:
        cr = _int(g(details, "cached_tokens", 0))
    cw = _int(g(usage, "cache_creation_input_tokens", 0))
    if not cw and details is not None:
        cw = _int(g(details, "cache_creation_tokens", 0))
    out_details = g(usage, "completion_tokens_details", None) or g(
        usage, "output_tokens_details", None
    )
    r = _int(g(out_details, "reasoning_tokens", 0)) if out_details is not None else 0
    # Keep the invariants: the parts never exceed their totals.
    if cr + cw > i:
        i = cr + cw if i < cr + cw else i
    if r > o:
        o = r
    return i, o, cr, cw, r


_NO_ENTRIES: dict[str, Any] = {}


def _chat_tokens(usage: Any) -> tuple[int, int, int, int, int]:
    """`_tokens` for LiteLLM's own ``Usage`` class, read straight from its field dicts.

    The same values as the general path (LiteLLM mirrors the Anthropic cache
    fields into ``prompt_tokens_details``), without attribute lookups.
    """
    d = usage.__dict__
    i = _int(d.get("prompt_tokens"))
    o = _int(d.get("completion_tokens"))
    extra = usage.__pydantic_extra__ or _NO_ENTRIES
    cr = _int(extra.get("cache_read_input_tokens"))
    cw = _int(extra.get("cache_creation_input_tokens"))
    details = d.get("prompt_tokens_details")
    if details is not None:
        dd = details.__dict__
        if not cr:
            cr = _int(dd.get("cached_tokens"))
        if not cw:
            cw = _int(dd.get("cache_creation_tokens"))
    out_details = d.get("completion_tokens_details")
    r = _int(out_details.__dict__.get("reasoning_tokens")) if out_details is not None else 0
    if cr + cw > i:
        i = cr + cw
    if r > o:
        o = r
    return i, o, cr, cw, r


_model_cache: dict[tuple[str, str | None], tuple[str, str | None]] = {}


def _model_provider(name: str, provider: str | None) -> tuple[str, str | None]:
    """Split LiteLLM's model name into (model, provider) as LiteLLM resolved it."""
    key = (name, provider)
    hit = _model_cache.get(key)
    if hit is not None:
        return hit
    if provider is None:
        try:
            provider = litellm.get_llm_provider(name)[1]
        except Exception:
            provider = name.split("/", 1)[0] if "/" in name else None
    model = name
    if provider and model.startswith(provider + "/"):
        model = model[len(provider) + 1 :]
    if len(_model_cache) < 10_000:
        _model_cache[key] = (model, provider)
    return model, provider


def _requested_model(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    model = kwargs.get("model")
    if model is None and args and isinstance(args[0], str):
        model = args[0]
    return str(model) if model else "unknown"


def _cost_units(
    model: str,
    provider: str | None,
    reported: object,
    toks: tuple[int, int, int, int, int],
    custom: bool = True,
) -> int | None:
    """Cost in units: a custom price, else LiteLLM's response_cost; None when unpriced."""
    price = custom_price_for(model, provider) if custom else None  # None when none is set
    if price is not None:
        return cost_to_units(price.cost(toks[0], toks[1], toks[2], toks[3]))
    if isinstance(reported, (int, float)) and reported > 0:
        return cost_to_units(float(reported))
    # 0 or None: free only if LiteLLM really has a price for the model.
    if not litellm_knows(model, provider):
        return None
    if reported is None:
        c = price_tokens(model, provider, *toks)
        return None if c is None else cost_to_units(c)
    return 0


def record_result(
    frame: Frame,
    kind: str,
    result: object,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    started: float,
    state: CallState | None,
) -> None:
    """Record a finished, non-streaming call on ``frame``'s scope."""
    hp: Any = _attr(result, "_hidden_params")
    if not isinstance(hp, dict) and not hasattr(hp, "get"):  # TextCompletionResponse: HiddenParams
        hp = {}
    name = hp.get("litellm_model_name")
    provider_name = hp.get("custom_llm_provider")
    reported_cost = hp.get("response_cost")
    # The key `_defer` looks this scope's tally up by, next time (LiteLLM's names).
    alias = (name, provider_name, frame.module, frame.operation) if name else None
    if not name:
        name = _requested_model(args, kwargs)
    if state is not None and state.answered is not None:
        # A fallback or Router attempt answered: its model, provider and cost.
        name, provider_name, reported_cost = state.answered
        alias = None
    model, provider = _model_provider(str(name), provider_name)
    cache_hit = bool(hp.get("cache_hit"))
    estimated = False
    usage = _attr(result, "usage")
    if cache_hit:
        toks = (0, 0, 0, 0, 0)
        cost: int | None = 0
    else:
        if usage is not None:
            toks = _tokens(usage)
        elif kind in _TOKEN_KINDS:
            toks = _estimate_tokens(model, kwargs, result)
            estimated = True
        else:
            toks = (0, 0, 0, 0, 0)
        cost = _cost_units(model, provider, reported_cost, toks)
    meta: dict[str, Any] | None = None
    seconds = getattr(result, "duration", None) if kind == "transcription" else None
    if cache_hit or estimated or seconds or (state is not None and state.attempts > 1):
        meta = {}
        if isinstance(seconds, (int, float)) and seconds > 0:
            meta["audio_seconds"] = float(seconds)
        if cache_hit:
            meta["cache_hit"] = True
        if estimated:
            meta["usage_missing"] = True
        if state is not None and state.attempts > 1:
            meta["attempts"] = state.attempts
    _add(frame, kind, model, provider, toks, cost, False, estimated, started, hp, meta, alias)


def _add(
    frame: Frame,
    kind: str,
    model: str,
    provider: str | None,
    toks: tuple[int, int, int, int, int],
    cost: int | None,
    failed: bool,
    estimated: bool,
    started: float,
    hp: Mapping[str, Any],
    meta: Mapping[str, Any] | None,
    alias: tuple[Any, Any, str | None, str | None] | None = None,
) -> None:
    meter = frame.scope.meter
    now = time.time()
    rec = None
    if meter._records is not None or _events.OBSERVERS:
        rec = CallRecord(
            model=model,
            provider=provider,
            input_tokens=toks[0],
            output_tokens=toks[1],
            cache_read_tokens=toks[2],
            cache_write_tokens=toks[3],
            reasoning_tokens=toks[4],
            cost_usd=None if cost is None else cost / 10_000_000_000,
            module=frame.module,
            operation=frame.operation,
            path=frame.scope.path,
            kind=kind,
            failed=failed,
            estimated=estimated,
            timestamp=now,
            duration_s=time.perf_counter() - started,
            call_id=hp.get("litellm_call_id"),
            attributes=frame.attributes,
            metadata=meta,
        )
    meter._add(
        frame,
        (model, provider, frame.module, frame.operation),
        toks[0],
        toks[1],
        toks[2],
        toks[3],
        toks[4],
        cost,
        failed,
        estimated,
        now,
        rec,
        True,
        alias,
    )


# -- the common case, deferred -----------------------------------------------------------
#
# Most calls end in a ``ModelResponse`` with LiteLLM's own ``Usage``. For those the
# wrapper finds the scope's tally for the model and appends (tally, usage, hidden
# params, time) to the meter's pending list (`_defer`); the meter counts the batch
# when something reads it, or once PENDING_BATCH results wait (`_apply`), with the
# columns of a run of results for one tally summed by builtins. The numbers are the
# general path's (`record_result`): the tests compare the two.

_COST = itemgetter("response_cost")  # a missing cost raises: counted one by one
_DICT = attrgetter("__dict__")
_EXTRA = attrgetter("__pydantic_extra__")
_USAGE_FIELDS = itemgetter(
    "prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details"
)
_CACHED = methodcaller("get", "cached_tokens")
_CACHE_CREATION = methodcaller("get", "cache_creation_tokens")
_REASONING = methodcaller("get", "reasoning_tokens")
# map(_NONE_TO_0, xs, xs): None -> 0, anything else unchanged.
_NONE_TO_0: Callable[[Any, Any], Any] = {None: 0}.get
# A pending row: (tally entry, usage, hidden params, perf_counter at the call's start),
# where the entry is ``scope._fast``'s (id of the tally, the tally).
_ROW_ENTRY = itemgetter(0)
_ROW_USAGE = itemgetter(1)
_ROW_HIDDEN = itemgetter(2)
_ROW_TIME = itemgetter(3)
_SHORT_RUN = 4  # runs shorter than this are counted one by one


def _defer(frame: Frame, result: Any, started: float) -> bool:
    """Queue a plain ``ModelResponse`` on its meter; False leaves it to the general path.

    Plain: LiteLLM's own ``Usage``, not a cache hit, no custom prices, no per-call
    records, and a model this scope has recorded before (the general path filed
    its tally in ``scope._fast`` then). The caller has checked for budgets and for
    attempts inside the call. The usage and hidden parameters are read when the
    batch is counted; LiteLLM does not change them after returning a response.
    ``started`` is the call's ``time.perf_counter()`` at its start; it becomes the
    call's wall-clock time when the batch is counted.
    """
    hp = result.__pydantic_private__["_hidden_params"]
    usage = result.__pydantic_extra__.get("usage")
    if type(usage) is not _LiteLLMUsage or hp.get("cache_hit") or _custom_prices:
        return False
    scope = frame.scope
    entry = scope._fast.get(
        (hp.get("litellm_model_name"), hp.get("custom_llm_provider"), frame.module, frame.operation)
    )
    if entry is None:
        return False
    meter = scope.meter
    if meter._records is not None or _events.OBSERVERS:
        return False
    pending = meter._pending
    pending.append((entry, usage, hp, started))
    if len(pending) >= PENDING_BATCH:
        meter._settle()
    return True


def _apply(meter: Meter, batch: list[tuple[Any, ...]]) -> None:
    """Count a batch of deferred results; the caller holds the meter's lock."""
    # perf_counter() values to wall-clock time, as of now (the calls were just made,
    # or, for a batch counted by a reading, at most as long ago as that reading).
    to_wall = _time() - _perf_counter()
    first = min(map(_ROW_TIME, batch)) + to_wall
    last = max(map(_ROW_TIME, batch)) + to_wall
    if meter._first_ts is None or first < meter._first_ts:
        meter._first_ts = first
    if meter._last_ts is None or last > meter._last_ts:
        meter._last_ts = last
    # One entry object per tally: consecutive rows of a tally compare by identity.
    for entry, group in groupby(batch, _ROW_ENTRY):
        rows = list(group)
        acc = entry[1]
        if len(rows) >= _SHORT_RUN and _sum_run(acc, rows):
            continue
        for row in rows:
            try:
                _count_one(acc, row[1], row[2])
            except Exception:
                _errors.log_internal_error("call recording")


def _sum_run(acc: list[int], rows: list[tuple[Any, ...]]) -> bool:
    """Add a run of results for one tally, column by column; False if any needs a closer look.

    Nothing is added unless every value is what the general path would take as is:
    non-negative ints, a positive finite float cost, no Anthropic-style extra fields,
    parts within their totals.
    """
    try:
        usages = list(map(_ROW_USAGE, rows))
        costs = list(map(_COST, map(_ROW_HIDDEN, rows)))
        # None raises, 0 fails min(), NaN and infinity fail the sum: counted one by one.
        if not min(costs) > 0.0 or not sum(costs) < 1e12:
            return False
        if any(map(_EXTRA, usages)):
            return False
        ins, outs, details, out_details = zip(*map(_USAGE_FIELDS, map(_DICT, usages)), strict=True)
        # An int sum of ints and bools is what `_int` takes as is; None raises, a float
        # makes the sum a float; a negative count fails min().
        total_in, total_out = sum(ins), sum(outs)
        if type(total_in) is not int or type(total_out) is not int:
            return False
        if min(ins) < 0 or min(outs) < 0:
            return False
        cache_read = cache_write = reasoning = 0
        if any(details):
            if not all(details):
                return False
            dicts = list(map(_DICT, details))
            raw_cr = list(map(_CACHED, dicts))
            raw_cw = list(map(_CACHE_CREATION, dicts))
            crs = list(map(_NONE_TO_0, raw_cr, raw_cr))
            cws = list(map(_NONE_TO_0, raw_cw, raw_cw))
            cache_read, cache_write = sum(crs), sum(cws)
            if type(cache_read) is not int or type(cache_write) is not int:
                return False
            if min(crs) < 0 or min(cws) < 0 or any(map(gt, map(add, crs, cws), ins)):
                return False
        if any(out_details):
            if not all(out_details):
                return False
            raw_r = list(map(_REASONING, map(_DICT, out_details)))
            rs = list(map(_NONE_TO_0, raw_r, raw_r))
            reasoning = sum(rs)
            if type(reasoning) is not int or min(rs) < 0 or any(map(gt, rs, outs)):
                return False
        units = sum(map(round, map(mul, costs, repeat(COST_SCALE))))  # cost_to_units, each
    except Exception:
        return False
    acc[CALLS] += len(rows)
    acc[INPUT] += total_in
    acc[OUTPUT] += total_out
    acc[CACHE_READ] += cache_read
    acc[CACHE_WRITE] += cache_write
    acc[REASONING] += reasoning
    acc[COST] += units
    return True


def _count_one(acc: list[int], usage: Any, hp: Mapping[str, Any]) -> None:
    """`record_result`'s numbers for one deferred result, added to ``acc``."""
    model, provider = _model_provider(str(hp["litellm_model_name"]), hp.get("custom_llm_provider"))
    toks = _chat_tokens(usage)
    # Custom prices set after the call do not apply to it: none were set when it was made.
    cost = _cost_units(model, provider, hp.get("response_cost"), toks, custom=False)
    add_acc(acc, _one_call_acc(toks[0], toks[1], toks[2], toks[3], toks[4], cost, False, False))


_meter._apply_pending = _apply


def _estimate_tokens(
    model: str, kwargs: Mapping[str, Any], result: object
) -> tuple[int, int, int, int, int]:
    try:
        i = litellm.token_counter(model=model, messages=kwargs.get("messages") or [])
        text = ""
        for choice in getattr(result, "choices", None) or ():
            msg = getattr(choice, "message", None)
            text += str(getattr(msg, "content", None) or getattr(choice, "text", "") or "")
        o = litellm.token_counter(model=model, text=text) if text else 0
        return int(i), int(o), 0, 0, 0
    except Exception:
        return 0, 0, 0, 0, 0


def record_failure(
    frame: Frame,
    kind: str,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    started: float,
    exc: BaseException,
) -> None:
    """Record a call that raised: counted in ``failed_calls``, no tokens, no cost."""
    model, provider = _model_provider(
        _requested_model(args, kwargs), getattr(exc, "llm_provider", None) or None
    )
    meta = {"error": type(exc).__name__}
    _add(frame, kind, model, provider, (0, 0, 0, 0, 0), 0, True, False, started, {}, meta)


# -- streams ----------------------------------------------------------------------------


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


def _patch_stream_class(cls: Any) -> None:
    orig_next = cls.__next__
    orig_anext = cls.__anext__
    orig_close = cls.close
    orig_aclose = cls.aclose

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
        _originals[(cls, name)] = cls.__dict__[name]
        fn.__qualname__ = f"{cls.__name__}.{name}"
        setattr(cls, name, fn)


# -- wrapping the entry points ----------------------------------------------------------

_stream_class: type | None = None
_stream_options_ok: dict[str, bool] = {}


def _is_stream(result: object) -> bool:
    return _stream_class is not None and isinstance(result, _stream_class)


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


def _prepare(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Ask for a final usage chunk on a chat stream, if on and the provider takes it."""
    if (
        _settings["request_stream_usage"]
        and kind == "completion"
        and kwargs.get("stream") is True
        and kwargs.get("stream_options") is None
        and _supports_stream_options(_requested_model(args, kwargs))
    ):
        kwargs["stream_options"] = {"include_usage": True}
        return True
    return False


def _hide_usage_chunk(stream: Any) -> None:
    # The caller did not ask for a usage chunk: keep the stream looking as it would
    # have (LiteLLM then keeps the provider's usage in .chunks without yielding it).
    if hasattr(stream, "send_stream_usage") and hasattr(stream, "stream_options"):
        stream.send_stream_usage = False
        stream.stream_options = None


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
        if _is_stream(result):
            if injected:
                _hide_usage_chunk(result)
            if state.streams == 0:  # else an attempt inside (Router) already attached its own
                state.streams += 1
                _attach_stream(result, StreamCall(frame, kind, args, kwargs, started))
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
                hp.get("litellm_model_name") or _requested_model(args, kwargs),
                hp.get("custom_llm_provider"),
                hp.get("response_cost"),
            )
        if _is_stream(result):
            if injected:
                _hide_usage_chunk(result)
            state.streams += 1
            frame = CURRENT.get() or DEFAULT_METER._root_frame
            _attach_stream(result, StreamCall(frame, kind, args, kwargs, time.perf_counter()))


def wrap_sync(fn: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """Wrap a synchronous litellm entry point."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # a refused or failed call's traceback ends at the user's line
        if not _installed:  # uninstrumented: a name bound earlier passes straight through
            return fn(*args, **kwargs)
        outer = IN_CALL.get() or _THREAD_CALL.call
        if outer is not None:
            # An attempt inside a recorded call (a retry, a fallback, a Router attempt).
            outer.attempts += 1
            injected = kwargs.get("stream") is True and _prepare(kind, args, kwargs)
            result = fn(*args, **kwargs)
            _nested_result(outer, kind, result, args, kwargs, injected)
            return result
        if kwargs.get("litellm_logging_obj") is not None:
            # LiteLLM's own fallback runner passes the outer call's logging object (a user
            # never does): an attempt inside a recorded call whose context was lost.
            return fn(*args, **kwargs)
        frame = CURRENT.get()
        if frame is None:
            frame = DEFAULT_METER._root_frame
        elif frame.budgets:
            before_call(frame)
        state = CallState()
        injected = kwargs.get("stream") is True and _prepare(kind, args, kwargs)
        started = _perf_counter()
        thread_call = _THREAD_CALL
        thread_call.call = state  # this thread is busy with the call until it returns
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:
            with _errors.internal_errors_swallowed("failure recording"):
                record_failure(frame, kind, args, kwargs, started, e)
            raise
        finally:
            thread_call.call = None
        if type(result) is _ModelResponse and state.attempts == 1 and not frame.budgets:
            try:
                if _defer(frame, result, started):
                    return result
            except Exception:  # raised before queuing it: the general path records it
                _errors.log_internal_error("call recording")
        elif isinstance(result, CoroutineType):  # completion(..., acompletion=True)
            return _await_and_record(result, frame, kind, args, kwargs, started, state, injected)
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
) -> Any:
    token = IN_CALL.set(state)  # the call runs now: attempts inside it pass through
    try:
        result = await coro
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
        if not _installed:  # uninstrumented: a name bound earlier passes straight through
            return await fn(*args, **kwargs)
        outer = IN_CALL.get() or _THREAD_CALL.call
        if outer is not None:
            # An attempt inside a recorded call (a retry, a fallback, a Router attempt).
            outer.attempts += 1
            injected = kwargs.get("stream") is True and _prepare(kind, args, kwargs)
            result = await fn(*args, **kwargs)
            _nested_result(outer, kind, result, args, kwargs, injected)
            return result
        if kwargs.get("litellm_logging_obj") is not None:
            # LiteLLM's own fallback runner passes the outer call's logging object (a user
            # never does): an attempt inside a recorded call whose context was lost.
            return await fn(*args, **kwargs)
        frame = CURRENT.get()
        if frame is None:
            frame = DEFAULT_METER._root_frame
        elif frame.budgets:
            before_call(frame)
        state = CallState()
        injected = kwargs.get("stream") is True and _prepare(kind, args, kwargs)
        started = _perf_counter()
        token = IN_CALL.set(state)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as e:
            with _errors.internal_errors_swallowed("failure recording"):
                record_failure(frame, kind, args, kwargs, started, e)
            raise
        finally:
            IN_CALL.reset(token)
        if type(result) is _ModelResponse and state.attempts == 1 and not frame.budgets:
            try:
                if _defer(frame, result, started):
                    return result
            except Exception:  # raised before queuing it: the general path records it
                _errors.log_internal_error("call recording")
        _after(frame, kind, result, args, kwargs, started, state, injected)
        return result

    wrapper.__tokenmeter_original__ = fn  # type: ignore[attr-defined]
    return wrapper


def _wrap(fn: Callable[..., Any], kind: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):
        return wrap_async(fn, kind)
    return wrap_sync(fn, kind)


# -- install / remove -------------------------------------------------------------------

_installed = False


def instrument() -> None:
    """Wrap litellm's entry points, Router methods and stream class (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        for name, kind in FUNCTIONS.items():
            fn = getattr(litellm, name, None)
            if fn is None or hasattr(fn, "__tokenmeter_original__"):
                continue
            _originals[(litellm, name)] = fn
            setattr(litellm, name, _wrap(fn, kind))
        from litellm.router import Router

        # Router serves its endpoints from a core class through a metaclass: a
        # class-level setattr replaces the core's method and delattr restores it.
        for name, kind in FUNCTIONS.items():
            try:
                meth = getattr(Router, name)
            except AttributeError:
                continue
            if not callable(meth) or hasattr(meth, "__tokenmeter_original__"):
                continue
            setattr(Router, name, _wrap(meth, kind))
            _router_patched.append(name)
        from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

        global _stream_class
        _stream_class = CustomStreamWrapper
        _patch_stream_class(CustomStreamWrapper)
        _sync_settings()
        _installed = True


def uninstrument() -> None:
    """Put litellm back as it was: calls are no longer attributed."""
    global _installed
    with _lock:
        for (owner, name), original in list(_originals.items()):
            setattr(owner, name, original)
        _originals.clear()
        if _router_patched:
            from litellm.router import Router

            for name in reversed(_router_patched):
                delattr(Router, name)
            _router_patched.clear()
        _installed = False


def instrumented() -> bool:
    """Whether litellm calls are being attributed."""
    return _installed
