"""The exact integer accounting behind `Usage`: cost units and accumulator lists.

Kept apart from `_usage` (which defines `Usage` with attrs) so the hot path and
``import tokenmeter`` do not load attrs: see docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Costs are accounted internally as whole multiples of 1e-10 USD, in Python ints:
#: sums are then exact and independent of order and threads. ``cost_usd`` floats
#: are derived from them. The grid is finer than any per-token price published.
COST_SCALE = 10_000_000_000
#: A cost above this, for one call, is taken for a mistake (and its exact sum would
#: leave the range of a float).
MAX_COST_USD = 1e12


def cost_to_units(cost_usd: float) -> int:
    """Convert a dollar amount to integer cost units (1e-10 USD)."""
    return round(cost_usd * COST_SCALE)


def units_to_cost(units: int) -> float:
    """Convert integer cost units (1e-10 USD) back to dollars."""
    return units / COST_SCALE


#: The counters of an accumulator list (the mutable per-node tally), in order: the
#: fields of `Usage`, ``cost_usd`` held as integer cost units. `_usage` builds its
#: conversions from this tuple.
ACC_FIELDS = (
    "calls",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_calls",
    "failed_calls",
    "estimated_calls",
)
ACC_SIZE = len(ACC_FIELDS)

# Index of each counter in an accumulator list.
CALLS = ACC_FIELDS.index("calls")
INPUT = ACC_FIELDS.index("input_tokens")
CACHE_READ = ACC_FIELDS.index("cache_read_tokens")
CACHE_WRITE = ACC_FIELDS.index("cache_write_tokens")
OUTPUT = ACC_FIELDS.index("output_tokens")
REASONING = ACC_FIELDS.index("reasoning_tokens")
COST = ACC_FIELDS.index("cost_usd")
UNPRICED = ACC_FIELDS.index("unpriced_calls")
FAILED = ACC_FIELDS.index("failed_calls")
ESTIMATED = ACC_FIELDS.index("estimated_calls")


def add_acc(into: list[int], other: Sequence[int]) -> None:
    """Add accumulator ``other`` into ``into`` in place."""
    for i in range(ACC_SIZE):
        into[i] += other[i]


def count_call(
    acc: list[int],
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write: int,
    reasoning: int,
    cost_units: int | None,
    failed: bool,
    estimated: bool,
) -> None:
    """Count one call into accumulator ``acc``, in place: the one place a call is counted."""
    acc[CALLS] += 1
    acc[INPUT] += input_tokens
    acc[OUTPUT] += output_tokens
    if cache_read or cache_write or reasoning:
        acc[CACHE_READ] += cache_read
        acc[CACHE_WRITE] += cache_write
        acc[REASONING] += reasoning
    if cost_units is None:
        acc[UNPRICED] += 1
    else:
        acc[COST] += cost_units
    if failed:
        acc[FAILED] += 1
    if estimated:
        acc[ESTIMATED] += 1
