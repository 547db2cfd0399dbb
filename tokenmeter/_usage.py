"""The numbers: :class:`Usage`, and the exact integer accounting behind it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

#: Costs are accounted internally as whole multiples of 1e-10 USD, in Python ints:
#: sums are then exact and independent of order and threads. ``cost_usd`` floats
#: are derived from them. The grid is finer than any per-token price published.
COST_SCALE = 10_000_000_000


def cost_to_units(cost_usd: float) -> int:
    """Convert a dollar amount to integer cost units (1e-10 USD)."""
    return round(cost_usd * COST_SCALE)


def units_to_cost(units: int) -> float:
    """Convert integer cost units (1e-10 USD) back to dollars."""
    return units / COST_SCALE


# Index of each counter in an accumulator list (the mutable per-node tally).
CALLS, INPUT, CACHE_READ, CACHE_WRITE, OUTPUT, REASONING, COST, UNPRICED, FAILED, ESTIMATED = range(
    10
)
ACC_SIZE = 10


@attrs.frozen
class Usage:
    """Token, call and cost totals; immutable, and ``Usage + Usage`` adds field by field.

    ``input_tokens`` includes the cached parts (``cache_read_tokens``,
    ``cache_write_tokens``); ``output_tokens`` includes ``reasoning_tokens``.
    ``cost_usd`` sums the priced calls only; calls with no known price are
    counted in ``unpriced_calls`` instead of being treated as free.
    """

    calls: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    failed_calls: int = 0
    estimated_calls: int = 0

    @property
    def total_tokens(self) -> int:
        """``input_tokens + output_tokens``."""
        return self.input_tokens + self.output_tokens

    @property
    def priced_calls(self) -> int:
        """Calls whose cost is known (``calls - unpriced_calls``)."""
        return self.calls - self.unpriced_calls

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            units_to_cost(cost_to_units(self.cost_usd) + cost_to_units(other.cost_usd)),
            self.unpriced_calls + other.unpriced_calls,
            self.failed_calls + other.failed_calls,
            self.estimated_calls + other.estimated_calls,
        )

    def __radd__(self, other: object) -> Usage:
        # Lets ``sum(usages)`` work: sum() starts from the int 0.
        if other == 0:
            return self
        return NotImplemented

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field plus ``total_tokens``."""
        d = attrs.asdict(self)
        d["total_tokens"] = self.total_tokens
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Build a Usage from :meth:`to_dict` output (``total_tokens`` is derived, not read)."""
        names = attrs.fields_dict(cls)
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def _from_acc(cls, acc: Sequence[int]) -> Usage:
        return cls(
            acc[CALLS],
            acc[INPUT],
            acc[CACHE_READ],
            acc[CACHE_WRITE],
            acc[OUTPUT],
            acc[REASONING],
            units_to_cost(acc[COST]),
            acc[UNPRICED],
            acc[FAILED],
            acc[ESTIMATED],
        )

    def _to_acc(self) -> list[int]:
        return [
            self.calls,
            self.input_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.output_tokens,
            self.reasoning_tokens,
            cost_to_units(self.cost_usd),
            self.unpriced_calls,
            self.failed_calls,
            self.estimated_calls,
        ]


def add_acc(into: list[int], other: Sequence[int]) -> None:
    """Add accumulator ``other`` into ``into`` in place."""
    for i in range(ACC_SIZE):
        into[i] += other[i]
