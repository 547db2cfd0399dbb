"""The numbers: `Usage`, and the exact integer accounting behind it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any

import attrs

# The integer accounting lives in _acc (no attrs there); re-exported for the modules
# that already have attrs loaded.
from ._acc import ACC_FIELDS as ACC_FIELDS
from ._acc import ACC_SIZE as ACC_SIZE
from ._acc import CACHE_READ as CACHE_READ
from ._acc import CACHE_WRITE as CACHE_WRITE
from ._acc import CALLS as CALLS
from ._acc import COST as COST
from ._acc import COST_SCALE as COST_SCALE
from ._acc import ESTIMATED as ESTIMATED
from ._acc import FAILED as FAILED
from ._acc import INPUT as INPUT
from ._acc import OUTPUT as OUTPUT
from ._acc import REASONING as REASONING
from ._acc import UNPRICED as UNPRICED
from ._acc import add_acc as add_acc
from ._acc import cost_to_units as cost_to_units
from ._acc import units_to_cost as units_to_cost


@attrs.frozen(weakref_slot=False)  # no weak references: see `usage_from_acc`
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
        """Build a Usage from `to_dict` output (``total_tokens`` is derived, not read).

        A count that is not a non-negative integer, or a cost that is not a
        non-negative finite number, raises ValueError naming the field.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a usage must be a mapping, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        for name in attrs.fields_dict(cls):
            if name not in data:
                continue
            v = data[name]
            if name == "cost_usd":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e15:
                    raise ValueError(f"cost_usd must be a non-negative finite number, got {v!r}")
                v = float(v)
            elif type(v) is not int or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r:.60}")
            kwargs[name] = v
        return cls(**kwargs)

    @classmethod
    def _from_acc_init(cls, acc: Sequence[int]) -> Usage:
        values: list[Any] = list(acc)
        values[COST] = units_to_cost(values[COST])
        return cls(**dict(zip(ACC_FIELDS, values, strict=True)))


#: `Usage`'s layout with no ``__init__`` of its own: see `usage_from_acc`.
_UsageFromAcc = type("_UsageFromAcc", (), {"__slots__": ACC_FIELDS})


def _compile_from_acc() -> Callable[[Sequence[int]], Usage]:
    """``acc -> Usage`` as one unpacking of ``acc`` into the slots `ACC_FIELDS` names.

    Written out from the tuple once, as attrs writes ``__init__``: a loop over the
    names would cost a call per field.
    """
    targets = ", ".join("cost_units" if f == "cost_usd" else f"u.{f}" for f in ACC_FIELDS)
    source = (
        "def usage_from_acc(acc):\n"
        "    u = new(UsageFromAcc)\n"
        f"    {targets} = acc\n"
        "    u.cost_usd = units_to_cost(cost_units)\n"
        "    u.__class__ = Usage\n"
        "    return u\n"
    )
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "UsageFromAcc": _UsageFromAcc,
        "units_to_cost": units_to_cost,
        "Usage": Usage,
    }
    exec(compile(source, "<tokenmeter._usage>", "exec"), namespace)
    return namespace["usage_from_acc"]  # type: ignore[no-any-return]


def _checked_from_acc() -> Callable[[Sequence[int]], Usage]:
    """The unpacking if it builds what `Usage._from_acc_init` does, else the latter."""
    probe = [1, 2, 3, 4, 5, 6, 7_000_000_000, 8, 9, 10]
    try:
        if sorted(ACC_FIELDS) == sorted(a.name for a in attrs.fields(Usage)):
            fast = _compile_from_acc()
            built: object = fast(probe)
            if type(built) is Usage and built == Usage._from_acc_init(probe):
                return fast
    except TypeError:  # an interpreter that refuses the class assignment
        pass
    return Usage._from_acc_init


#: The `Usage` of an accumulator list: a report builds one or more per scope. An attrs
#: frozen class sets each field through ``object.__setattr__``; this builds the same
#: object with plain slot stores and then gives it its class (the layouts are the same,
#: which is why `Usage` has no weak-reference slot), in a fraction of the time.
usage_from_acc: Callable[[Sequence[int]], Usage] = _checked_from_acc()

_acc_values = attrgetter(*ACC_FIELDS)

#: `Usage`'s layout as a class of its own, for code that builds many Usage objects
#: inline the way `usage_from_acc` does (a report); None where that is not possible.
USAGE_LAYOUT: type[Any] | None = None if usage_from_acc is Usage._from_acc_init else _UsageFromAcc


def usage_to_acc(u: Usage) -> list[int]:
    """``u``'s numbers as an accumulator (the layout of ``_acc``), cost in integer units."""
    acc: list[Any] = list(_acc_values(u))
    acc[COST] = cost_to_units(acc[COST])
    return acc
