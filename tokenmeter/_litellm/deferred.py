"""The deferred queue: plain responses queued on the meter and counted in batches."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import groupby, repeat
from operator import add, gt, itemgetter, mul
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
    count_call,
)
from tokenmeter._frame import Frame
from tokenmeter._pricing import CUSTOM_PRICES
from tokenmeter._tree import PENDING_BATCH, Tree, add_kept_locked, count_deferred_with, settle

from .extract import cost_units, model_provider, to_int

_perf_counter = time.perf_counter
_time = time.time

# -- the common case, deferred -----------------------------------------------------------
#
# Most calls end in a ``ModelResponse`` with LiteLLM's own ``Usage``. For those the
# wrapper finds the scope's tally for the model and appends a row to the meter's
# pending list (`defer`): the tally and the numbers the response held when it was
# returned, read into a tuple then (user code may change the response afterwards).
# The meter counts the batch when something reads it, or once PENDING_BATCH rows
# wait (`apply`), with the columns of a run of rows for one tally summed by
# builtins. The numbers are the general path's (`record_result`): the tests compare
# the two.

_USAGE_FIELDS = itemgetter(
    "prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details"
)
_HIDDEN = itemgetter("litellm_model_name", "custom_llm_provider", "response_cost")
# map(_NONE_TO_0, xs, xs): None -> 0, anything else unchanged.
_NONE_TO_0: Callable[[Any, Any], Any] = {None: 0}.get
# A pending row, everything read when the call returned:
#   0 the tally entry: the frame's ``fast`` table's (id of the tally, the tally)
#   1 perf_counter() at the call's start
#   2 hidden params' response_cost
#   3 the tally's key: (litellm_model_name, custom_llm_provider, module, operation)
#   4, 5 usage's prompt_tokens, completion_tokens
#   6, 7 prompt_tokens_details' cached_tokens, cache_creation_tokens (None: no details)
#   8 completion_tokens_details' reasoning_tokens (None: no details)
#   9, 10 usage's extra cache_read_input_tokens, cache_creation_input_tokens (Anthropic)
# A usage with no details and no extra fields (LiteLLM's mock responses, and servers
# that send no details) gives a short row, 0 to 5 only: nothing else to read, and a
# batch of short rows is summed with fewer columns. The columns of a batch are taken
# with zip(strict=True): a batch mixing both kinds goes by runs, then one by one.
_ROW_ENTRY = itemgetter(0)
_SHORT_ROW = 6
_PAD = (None,) * 5  # a short row's missing fields, for `count_one`
_ROW_TIME = itemgetter(1)
_SHORT_RUN = 4  # runs shorter than this are counted one by one


def defer(frame: Frame, result: Any, started: float) -> bool:
    """Queue a plain ``ModelResponse`` on its meter; False leaves it to the general path.

    Plain: LiteLLM's own ``Usage``, not a cache hit, no custom prices, no per-call
    records, and a model this scope has recorded before (the general path filed
    its tally in the frame's ``fast`` table then, see `_tree.frame_tables`). The
    caller has checked for budgets and for attempts inside the call. The numbers are
    read now, into the row: the call is counted as it was returned, whatever is done
    to the response later.
    ``started`` is the call's ``time.perf_counter()`` at its start; it becomes the
    call's wall-clock time when the batch is counted.
    """
    hp = result.__pydantic_private__["_hidden_params"]
    try:
        usage = result.__pydantic_extra__["usage"]
    except KeyError:  # no usage: estimated by the general path
        return False
    if type(usage) is not _LiteLLMUsage or CUSTOM_PRICES or _events.OBSERVERS:
        return False
    if "cache_hit" in hp and hp["cache_hit"]:  # noqa: RUF019 (no method call: the usual miss)
        return False
    try:
        name, provider, cost = _HIDDEN(hp)
    except KeyError:
        name, provider, cost = (
            hp.get("litellm_model_name"),
            hp.get("custom_llm_provider"),
            hp.get("response_cost"),
        )
    key = (name, provider, frame.module, frame.operation)
    entry = frame.fast.get(key)
    if entry is None:
        return False
    prompt, completion, details, out_details = _USAGE_FIELDS(usage.__dict__)
    if not prompt and not completion:  # no tokens: estimated by the general path
        return False
    extra = usage.__pydantic_extra__
    if details is None and out_details is None and not extra:
        row: tuple[Any, ...] = (entry, started, cost, key, prompt, completion)
    else:
        if details is None:
            cached = created = None
        else:
            d = details.__dict__
            cached = d.get("cached_tokens")
            created = d.get("cache_creation_tokens")
        reasoning = None if out_details is None else out_details.__dict__.get("reasoning_tokens")
        if extra:
            x_read = extra.get("cache_read_input_tokens")
            x_write = extra.get("cache_creation_input_tokens")
        else:
            x_read = x_write = None
        row = (entry, started, cost, key, prompt, completion, cached, created, reasoning,
               x_read, x_write)  # fmt: skip
    pending = frame.pending
    pending.append(row)
    if len(pending) >= PENDING_BATCH:
        settle(frame.scope.meter)
    return True


def apply(meter: Tree, batch: list[tuple[Any, ...]]) -> None:
    """Count a batch of deferred results; the caller holds the meter's lock."""
    cols: tuple[tuple[Any, ...], ...] | None
    try:
        cols = tuple(zip(*batch, strict=True))
        times = cols[1]
    except ValueError:  # short and long rows: summed by runs below, or one by one
        cols = None
        times = tuple(map(_ROW_TIME, batch))
    # perf_counter() values to wall-clock time, as of now (the calls were just made,
    # or, for a batch counted by a reading, at most as long ago as that reading).
    to_wall = _time() - _perf_counter()
    add_kept_locked(meter, min(times) + to_wall, max(times) + to_wall, 0, ())
    n = len(batch)
    # The commonest batch: every row for one tally (one model in one scope).
    if cols is not None and n >= _SHORT_RUN:
        entries = cols[0]
        first = entries[0]
        if entries.count(first) == n and _sum_columns(first[1], cols, n):
            return
    # One entry object per tally: consecutive rows of a tally compare by identity.
    for entry, group in groupby(batch, _ROW_ENTRY):
        rows = list(group)
        acc = entry[1]
        if len(rows) >= _SHORT_RUN and sum_run(acc, rows):
            continue
        for row in rows:
            try:
                count_one(acc, row)
            except Exception:
                _errors.log_internal_error("call recording")


def sum_run(acc: list[int], rows: list[tuple[Any, ...]]) -> bool:
    """Add a run of rows for one tally, column by column; False if any needs a closer look."""
    try:
        cols = tuple(zip(*rows, strict=True))
    except Exception:  # short and long rows
        return False
    return _sum_columns(acc, cols, len(rows))


def _sum_columns(acc: list[int], cols: tuple[tuple[Any, ...], ...], n: int) -> bool:
    """Add ``n`` rows for one tally, given as columns; False if any needs a closer look.

    Nothing is added unless every value is what the general path would take as is:
    non-negative ints, a positive finite float cost, no Anthropic-style extra fields,
    parts within their totals.
    """
    try:
        short = len(cols) == _SHORT_ROW
        _, _, costs, _, ins, outs = cols[:_SHORT_ROW]
        if not short:
            x_read, x_write = cols[9:]
            if x_read.count(None) != n or x_write.count(None) != n:
                return False
        # None raises, 0 fails the test, NaN and infinity fail the sum: counted one by one.
        cost = costs[0]
        same_cost = costs.count(cost) == n  # one price, one usage: a run of the same call
        if not (cost if same_cost else min(costs)) > 0.0 or not sum(costs) < 1e12:
            return False
        # An int sum of ints and bools is what `to_int` takes as is; None raises, a float
        # makes the sum a float; a negative count fails min().
        total_in, total_out = sum(ins), sum(outs)
        if type(total_in) is not int or type(total_out) is not int:
            return False
        if min(ins) < 0 or min(outs) < 0:
            return False
        if short:  # no parts
            cache_read = cache_write = reasoning = 0
        else:
            crs, cache_read = _column(cols[6], n)
            cws, cache_write = _column(cols[7], n)
            rs, reasoning = _column(cols[8], n)
            if cache_read < 0 or cache_write < 0 or reasoning < 0:
                return False
            # Parts within their totals (nothing to check where a part is 0 in every row).
            if (cache_read or cache_write) and any(map(gt, map(add, crs, cws), ins)):
                return False
            if reasoning and any(map(gt, rs, outs)):
                return False
        # cost_to_units, each (n times the same units when every row has the same cost)
        if same_cost:
            units = round(cost * COST_SCALE) * n
        else:
            units = sum(map(round, map(mul, costs, repeat(COST_SCALE))))
    except Exception:
        return False
    acc[CALLS] += n
    acc[INPUT] += total_in
    acc[OUTPUT] += total_out
    acc[CACHE_READ] += cache_read
    acc[CACHE_WRITE] += cache_write
    acc[REASONING] += reasoning
    acc[COST] += units
    return True


def _column(raw: tuple[Any, ...], n: int) -> tuple[Any, int]:
    """A column of counts (None as 0) and its sum, or -1 for a column `to_int` would not
    take as is (a float sum, a negative count)."""
    if None in raw:
        if raw.count(None) == n:
            return repeat(0, n), 0
        raw = tuple(map(_NONE_TO_0, raw, raw))
    total = sum(raw)
    if type(total) is not int or min(raw) < 0:
        return raw, -1
    return raw, total


def _row_tokens(row: tuple[Any, ...]) -> tuple[int, int, int, int, int]:
    """`chat_tokens` of the usage a row was read from."""
    i = to_int(row[4])
    o = to_int(row[5])
    cr = to_int(row[9])
    cw = to_int(row[10])
    if not cr:
        cr = to_int(row[6])
    if not cw:
        cw = to_int(row[7])
    r = to_int(row[8])
    if cr + cw > i:
        i = cr + cw
    if r > o:
        o = r
    return i, o, cr, cw, r


def count_one(acc: list[int], row: tuple[Any, ...]) -> None:
    """`record_result`'s numbers for one row, added to ``acc``."""
    if len(row) == _SHORT_ROW:
        row += _PAD
    key = row[3]
    model, provider = model_provider(str(key[0]), key[1])
    toks = _row_tokens(row)
    # Custom prices set after the call do not apply to it: none were set when it was made.
    cost = cost_units(model, provider, row[2], toks, custom=False)
    count_call(acc, toks[0], toks[1], toks[2], toks[3], toks[4], cost, False, False)


count_deferred_with(apply)
