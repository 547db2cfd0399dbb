"""How a report's nodes are built: inclusive sums, shared numbers, and the plain build."""

from __future__ import annotations

import pytest

import tokenmeter as tm
from tokenmeter import _report, _report_snap


def _meter() -> tm.Meter:
    """Own calls in two dimensions, an unpriced call, a scope with calls only below, a reset."""
    meter = tm.Meter()
    with meter.track("job"):
        meter.record(model="a", input_tokens=1, output_tokens=2, cost_usd=0.5)
        meter.record(model="b", provider="p", input_tokens=3, output_tokens=4)
        with meter.track("mid"), meter.track("leaf"):
            meter.record(model="a", input_tokens=10, output_tokens=20, cost_usd=0.25)
        with meter.track("gone"):
            meter.record(model="a", input_tokens=7, output_tokens=7, cost_usd=1.0)
        with meter.track("idle"):
            pass
    meter.root.children["job"].children["gone"].reset()
    return meter


def _shape(rep: tm.Report) -> list[tuple[object, ...]]:
    return [
        (n.path, n.entries, n.self_usage, n.usage, dict(n.breakdown), list(n.children))
        for n in rep.walk()
    ]


def test_inclusive_usage_is_own_plus_children_exactly() -> None:
    """job: own $0.5 + unpriced call, leaf $0.25 below; idle kept (entered); gone left out."""
    rep = _meter().report()
    job = rep.node("job")
    assert list(job.children) == ["mid", "idle"]
    assert job.self_usage == tm.Usage(
        calls=2, input_tokens=4, output_tokens=6, cost_usd=0.5, unpriced_calls=1
    )
    assert job.usage == tm.Usage(
        calls=3, input_tokens=14, output_tokens=26, cost_usd=0.75, unpriced_calls=1
    )
    assert job.breakdown == {
        ("a", None, None, None): tm.Usage(calls=1, input_tokens=1, output_tokens=2, cost_usd=0.5),
        ("b", "p", None, None): tm.Usage(
            calls=1, input_tokens=3, output_tokens=4, unpriced_calls=1
        ),
    }
    mid = rep.node("job", "mid")
    assert (mid.self_usage, mid.breakdown) == (tm.Usage(), {})
    assert mid.usage == tm.Usage(calls=1, input_tokens=10, output_tokens=20, cost_usd=0.25)
    assert rep.node("job", "idle").entries == 1
    assert rep.node("job", "idle").usage == tm.Usage()
    assert rep.total == job.usage


def test_a_report_built_without_slot_stores_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where class assignment is refused, nodes and usages come from their constructors, equal."""
    meter = _meter()
    fast = meter.report()
    monkeypatch.setattr(_report, "_NODE_LAYOUT", None)
    monkeypatch.setattr(_report_snap, "USAGE_LAYOUT", None)
    plain = meter.report()
    assert _shape(plain) == _shape(fast)
    assert len(_shape(plain)) == 5
    assert plain.total == tm.Usage(
        calls=3, input_tokens=14, output_tokens=26, cost_usd=0.75, unpriced_calls=1
    )
    assert all(type(n) is tm.ReportNode and type(n.usage) is tm.Usage for n in plain.walk())


def test_report_of_a_subtree_takes_that_scope_as_top() -> None:
    """A scope's own report: its subtree only, the scope on top even with nothing in it."""
    meter = _meter()
    rep = meter.root.children["job"].children["gone"].report()
    assert [(n.path, n.usage) for n in rep.walk()] == [(("job", "gone"), tm.Usage())]
    mid = meter.root.children["job"].children["mid"].report()
    assert [n.path for n in mid.walk()] == [("job", "mid"), ("job", "mid", "leaf")]
    assert mid.total == tm.Usage(calls=1, input_tokens=10, output_tokens=20, cost_usd=0.25)
