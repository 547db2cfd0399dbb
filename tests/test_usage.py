"""tm.Usage: a frozen value with exact, field-by-field addition."""

from __future__ import annotations

import attrs
import pytest

import tokenmeter as tm
from tokenmeter._usage import (
    ACC_FIELDS,
    COST_SCALE,
    cost_to_units,
    units_to_cost,
    usage_from_acc,
    usage_to_acc,
)

FULL = tm.Usage(
    calls=2,
    input_tokens=1000,
    cache_read_tokens=300,
    cache_write_tokens=200,
    output_tokens=500,
    reasoning_tokens=100,
    cost_usd=0.25,
    unpriced_calls=1,
    failed_calls=1,
    estimated_calls=1,
)


def test_defaults_are_zero() -> None:
    """A bare Usage has every counter at zero and total_tokens 0."""
    u = tm.Usage()
    assert attrs.astuple(u) == (0, 0, 0, 0, 0, 0, 0.0, 0, 0, 0)
    assert u.total_tokens == 0
    assert u.priced_calls == 0


def test_total_tokens_is_input_plus_output() -> None:
    """total_tokens == input_tokens + output_tokens (1000 + 500 == 1500)."""
    assert FULL.total_tokens == 1500
    assert FULL.priced_calls == 1


def test_add_is_field_by_field() -> None:
    """Usage + Usage adds each field: FULL + FULL doubles every counter."""
    doubled = FULL + FULL
    assert doubled == tm.Usage(4, 2000, 600, 400, 1000, 200, 0.5, 2, 2, 2)


def test_cost_addition_is_exact() -> None:
    """Costs add on a 1e-10 USD integer grid: 0.1 + 0.2 == 0.3 exactly."""
    assert (tm.Usage(cost_usd=0.1) + tm.Usage(cost_usd=0.2)).cost_usd == 0.3


def test_sum_of_usages() -> None:
    """sum() over Usages works (starts from 0) and gives 3x the counters."""
    assert sum([FULL, FULL, FULL]) == tm.Usage(6, 3000, 900, 600, 1500, 300, 0.75, 3, 3, 3)
    assert sum([], tm.Usage()) == tm.Usage()


def test_add_non_usage_is_type_error() -> None:
    """Adding an int other than 0, or a str, to a Usage raises TypeError."""
    with pytest.raises(TypeError):
        FULL + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        1 + FULL  # type: ignore[operator]
    with pytest.raises(TypeError):
        FULL + "x"  # type: ignore[operator]


def test_usage_is_frozen() -> None:
    """Assigning to a field of a Usage raises FrozenInstanceError."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        FULL.calls = 3  # type: ignore[misc]


def test_to_dict_from_dict_round_trip() -> None:
    """to_dict adds total_tokens; from_dict ignores it and gives an equal Usage."""
    d = FULL.to_dict()
    assert d["total_tokens"] == 1500
    assert d["cost_usd"] == 0.25
    assert tm.Usage.from_dict(d) == FULL


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"calls": -1}, "calls"),
        ({"input_tokens": "5"}, "input_tokens"),
        ({"failed_calls": True}, "failed_calls"),
        ({"output_tokens": 1.0}, "output_tokens"),
        ({"cost_usd": float("nan")}, "cost_usd"),
        ({"cost_usd": -1}, "cost_usd"),
        ({"cost_usd": "0.1"}, "cost_usd"),
    ],
)
def test_from_dict_rejects_bad_fields(data: dict[str, object], field: str) -> None:
    """Usage.from_dict raises ValueError naming a negative, non-integer or non-finite field."""
    with pytest.raises(ValueError, match=f"^{field} must be"):
        tm.Usage.from_dict(data)


def test_cost_units_round_trip() -> None:
    """cost_to_units maps $1 to 10**10 units and back; 1.5e-7 USD is 1500 units."""
    assert COST_SCALE == 10**10
    assert cost_to_units(1.0) == 10**10
    assert cost_to_units(1.5e-7) == 1500
    assert units_to_cost(1500) == 1.5e-7
    assert units_to_cost(cost_to_units(0.123456789)) == 0.123456789


def test_an_accumulator_holds_usages_fields_in_acc_fields_order() -> None:
    """ACC_FIELDS is Usage's field order; [1..6, 7e9 units, 8..10] is calls=1 .. $0.7 .. 10."""
    assert tuple(a.name for a in attrs.fields(tm.Usage)) == ACC_FIELDS
    acc = [1, 2, 3, 4, 5, 6, 7_000_000_000, 8, 9, 10]
    u = usage_from_acc(acc)
    assert type(u) is tm.Usage
    assert u == tm.Usage(
        calls=1,
        input_tokens=2,
        cache_read_tokens=3,
        cache_write_tokens=4,
        output_tokens=5,
        reasoning_tokens=6,
        cost_usd=0.7,
        unpriced_calls=8,
        failed_calls=9,
        estimated_calls=10,
    )
    assert usage_to_acc(u) == acc
    assert usage_from_acc is not tm.Usage._from_acc_init  # the fast build, on CPython
