"""track()/tracked() options: module and operation are checked where they are given."""

from __future__ import annotations

from pathlib import Path

import pytest

import tokenmeter as tm

BAD_LABELS = [5, "", "   ", ["x"], b"m"]


@pytest.mark.parametrize("field", ["module", "operation"])
@pytest.mark.parametrize("value", BAD_LABELS, ids=repr)
def test_track_refuses_a_label_that_is_not_a_string(field: str, value: object) -> None:
    """tm.track("a", module=5) raises ValueError naming the field and makes no scope."""
    meter = tm.Meter()
    with pytest.raises(ValueError, match=f"^{field} must be a non-empty string or None, got "):
        tm.track("a", **{field: value})
    with pytest.raises(ValueError, match=f"^{field} must be a non-empty string or None, got "):
        meter.track("a", **{field: value})
    assert [n.name for n in tm.report().root.children] == []
    assert [n.name for n in meter.report().root.children] == []


@pytest.mark.parametrize("field", ["module", "operation"])
def test_tracked_refuses_a_label_that_is_not_a_string(field: str) -> None:
    """@tm.tracked(operation=3) raises ValueError naming the field when it decorates."""
    with pytest.raises(ValueError, match=f"^{field} must be a non-empty string or None, got 3$"):
        tm.tracked(**{field: 3})
    with pytest.raises(ValueError, match=f"^{field} must be a non-empty string or None, got 3$"):
        tm.tracked("step", **{field: 3})


def test_track_refuses_a_bad_budget_as_before() -> None:
    """A bad budget given to tm.track is refused by name, as make_track refuses it."""
    with pytest.raises(ValueError, match="max_tokens"):
        tm.track("a", max_tokens=-1)
    with pytest.raises(ValueError, match="on_exceed"):
        tm.track("a", max_tokens=1, on_exceed="explode")


def test_a_report_with_module_and_operation_loads_back(tmp_path: Path) -> None:
    """A scope's module and operation go through save and load unchanged."""
    meter = tm.Meter()
    with meter.track("a", module="planner", operation="plan", user="u1"):
        meter.record(model="gpt-4o-mini", input_tokens=3, output_tokens=4, cost_usd=0.25)
    path = tmp_path / "r.json"
    meter.report().save(path)
    rep = tm.Report.load(path)
    ((key, usage),) = rep.node("a").breakdown.items()
    assert key == ("gpt-4o-mini", "openai", "planner", "plan")
    assert (usage.calls, usage.cost_usd) == (1, 0.25)
