"""The deferred queue: plain responses queued on the meter and counted in batches."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from itertools import groupby, repeat
from operator import add, attrgetter, gt, itemgetter, methodcaller, mul
from typing import Any

from litellm.types.utils import Usage as _LiteLLMUsage

from tokenmeter import _errors, _events
from tokenmeter._acc import (
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
from tokenmeter._pricing import _custom as _custom_prices
from tokenmeter._tree import PENDING_BATCH, Frame, Tree, count_deferred_with, one_call_acc

from .extract import _chat_tokens, _cost_units, _model_provider

_perf_counter = time.perf_counter
_time = time.time

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


def _apply(meter: Tree, batch: list[tuple[Any, ...]]) -> None:
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
    add_acc(acc, one_call_acc(toks[0], toks[1], toks[2], toks[3], toks[4], cost, False, False))


count_deferred_with(_apply)
