"""The scope engine: track(), the call tree, current(), meters and resets."""

from __future__ import annotations

import asyncio

import pytest

import tokenmeter as tm
from tokenmeter import _budgets, _scope
from tokenmeter._meter import DEFAULT_METER

ONE = {"model": "m", "input_tokens": 3, "output_tokens": 2, "cost_usd": 0.01}


def test_loop_reuses_one_node() -> None:
    """1,000 turns of `with tm.track('sample')` make one node with entries == 1000."""
    for _ in range(1000):
        with tm.track("sample"):
            tm.record(**ONE)
    rep = tm.report()
    assert list(rep.root.children) == ["sample"]
    node = rep.node("sample")
    assert node.entries == 1000
    assert node.usage.calls == 1000
    assert node.usage.total_tokens == 5000
    assert node.cost_per_entry == pytest.approx(0.01, rel=1e-12)
    assert node.usage.cost_usd == 10.0


def test_track_returns_the_scope_handle() -> None:
    """`with track('a') as s` gives a Scope with name 'a', path ('a',), which is current()."""
    with tm.track("a") as s:
        assert isinstance(s, tm.Scope)
        assert (s.name, s.path, s.entries) == ("a", ("a",), 1)
        assert tm.current() is s
    assert tm.current() is DEFAULT_METER.root


def test_nesting_builds_paths() -> None:
    """track('a') > track('b') > track('c') gives path ('a','b','c'); exits restore each parent."""
    with tm.track("a") as a:
        with tm.track("b") as b:
            with tm.track("c") as c:
                assert c.path == ("a", "b", "c")
                assert tm.current() is c
            assert tm.current() is b
        assert b.path == ("a", "b")
        assert tm.current() is a
    assert tm.current().path == ()


def test_same_name_under_different_parents_is_two_nodes() -> None:
    """'x' under 'a' and 'x' under 'b' are different nodes with their own usage."""
    with tm.track("a"), tm.track("x") as ax:
        tm.record(**ONE)
    with tm.track("b"), tm.track("x") as bx:
        tm.record(**ONE)
        tm.record(**ONE)
    assert ax is not bx
    assert (ax.usage.calls, bx.usage.calls) == (1, 2)
    rep = tm.report()
    assert rep.node("a", "x").usage.calls == 1
    assert rep.node("b", "x").usage.calls == 2


def test_reentering_returns_the_same_node() -> None:
    """Entering 'a' twice from the root gives the same Scope object, entries 2."""
    with tm.track("a") as first:
        pass
    with tm.track("a") as second:
        pass
    assert first is second
    assert second.entries == 2


def test_exception_restores_stack_and_keeps_usage() -> None:
    """An exception in a nested block restores the root and keeps the call recorded before it."""

    class Boom(Exception):
        pass

    def work() -> None:
        with tm.track("outer"), tm.track("inner"):
            tm.record(**ONE)
            raise Boom

    with pytest.raises(Boom):
        work()
    assert tm.current() is DEFAULT_METER.root
    assert _scope.CURRENT.get() is None
    rep = tm.report()
    assert rep.node("outer", "inner").usage.calls == 1
    assert rep.node("outer").usage.calls == 1
    assert rep.node("outer", "inner").entries == 1


async def test_async_with() -> None:
    """`async with tm.track('agent')` enters the scope across awaits and restores the root."""
    async with tm.track("agent") as s:
        await asyncio.sleep(0)
        assert tm.current() is s
        tm.record(**ONE)
        async with tm.track("sub") as sub:
            await asyncio.sleep(0)
            assert sub.path == ("agent", "sub")
    assert tm.current() is DEFAULT_METER.root
    assert tm.report().node("agent").usage.calls == 1


def test_attributes_are_carried_onto_records() -> None:
    """Attributes of enclosing scopes merge onto records (inner wins); they are not dimensions."""
    meter = tm.Meter(keep_records=True)
    with meter.track("a", team="search", user="u0"):
        r1 = meter.record(**ONE)
        with meter.track("b", user="u1"):
            r2 = meter.record(**ONE)
    assert dict(r1.attributes) == {"team": "search", "user": "u0"}
    assert dict(r2.attributes) == {"team": "search", "user": "u1"}
    assert [dict(r.attributes) for r in meter.records()] == [
        {"team": "search", "user": "u0"},
        {"team": "search", "user": "u1"},
    ]


def test_module_and_operation_inherit_and_override() -> None:
    """Nested scopes inherit module/operation unless they set their own."""
    with tm.track("a", module="M", operation="O"):
        r1 = tm.record(**ONE)
        with tm.track("b", operation="P"):
            r2 = tm.record(**ONE)
            with tm.track("c", module="N"):
                r3 = tm.record(**ONE)
    r4 = tm.record(**ONE)
    got = [(r.module, r.operation) for r in (r1, r2, r3, r4)]
    assert got == [("M", "O"), ("M", "P"), ("N", "P"), (None, None)]
    assert {k: u.calls for k, u in tm.report().by_module().items()} == {
        "M": 2,
        "N": 1,
        "(none)": 1,
    }


def test_current_outside_any_scope_is_the_root() -> None:
    """tm.current() with nothing open is the default meter's root: name '', path ()."""
    root = tm.current()
    assert root is DEFAULT_METER.root
    assert (root.name, root.path) == ("", ())


def test_usage_is_live_and_inclusive() -> None:
    """scope.usage includes children and updates at once; self_usage is the scope's own calls."""
    with tm.track("a") as a:
        tm.record(**ONE)
        with tm.track("b"):
            tm.record(**ONE)
            assert a.usage.calls == 2
        assert a.self_usage.calls == 1
        tm.record(**ONE)
    assert a.usage == tm.Usage(calls=3, input_tokens=9, output_tokens=6, cost_usd=0.03)
    assert a.self_usage.calls == 2


def test_scope_report_covers_its_subtree() -> None:
    """scope.report() is a report whose top is the scope: other branches are left out."""
    with tm.track("a") as a, tm.track("b"):
        tm.record(**ONE)
    with tm.track("other"):
        tm.record(**ONE)
    rep = a.report()
    assert rep.root.path == ("a",)
    assert rep.total.calls == 1
    assert rep.node("b").usage.calls == 1
    assert tm.report().total.calls == 2


def test_scope_name_must_be_a_non_empty_string() -> None:
    """track('') and track(3) raise ValueError naming the scope name."""
    with pytest.raises(ValueError, match="scope name"):
        tm.track("")
    with pytest.raises(ValueError, match="scope name"):
        tm.track(3)  # type: ignore[arg-type]


def test_scope_repr() -> None:
    """A scope's repr shows its path and entries."""
    with tm.track("a"), tm.track("b") as b:
        pass
    assert repr(b) == "<tokenmeter.Scope 'a/b' entries=1>"
    assert repr(tm.current()) == "<tokenmeter.Scope '<root>' entries=0>"


def test_one_track_object_entered_twice_nests() -> None:
    """The same Track entered inside itself nests (x, then x/x) and unwinds in order."""
    t = tm.track("x")
    with t as outer:
        with t as inner:
            assert inner.path == ("x", "x")
        assert tm.current() is outer
    assert tm.current() is DEFAULT_METER.root


async def test_one_track_object_shared_by_concurrent_tasks() -> None:
    """A module-level Track used by 50 concurrent tasks, each in its own scope, stays per task."""
    step = tm.track("step")

    async def work(i: int) -> None:
        async with tm.track(f"task{i}") as mine:
            async with step as s:
                await asyncio.sleep(0.001 * (i % 5))
                assert s.path == (f"task{i}", "step")
            await asyncio.sleep(0.001 * ((i * 3) % 7))
            assert tm.current() is mine
            tm.record(**ONE)

    await asyncio.gather(*(work(i) for i in range(50)))
    rep = tm.report()
    for i in range(50):
        assert rep.node(f"task{i}").self_usage.calls == 1
        assert rep.node(f"task{i}", "step").entries == 1


# -- meters ------------------------------------------------------------------------------


def test_meter_isolation() -> None:
    """A Meter's scopes and records stay out of the default meter, and the other way round."""
    meter = tm.Meter()
    with meter.track("job") as job:
        meter.record(**ONE)
        tm.record(**ONE)  # module-level record: the current scope, here meter's job
    tm.record(**ONE)
    assert job.meter is meter
    assert meter.report().total.calls == 2
    assert meter.report().node("job").usage.calls == 2
    assert tm.report().total.calls == 1
    assert tm.report().root.children == {}
    assert meter.record(**ONE).path == ()
    assert meter.report().root.self_usage.calls == 1


def test_meter_record_goes_to_its_own_nearest_scope() -> None:
    """meter.record inside a default-meter scope lands on the meter's root, not that scope."""
    meter = tm.Meter()
    with tm.track("outer"):
        rec = meter.record(**ONE)
    assert rec.path == ()
    assert meter.report().total.calls == 1
    assert tm.report().total.calls == 0


def test_nested_meters() -> None:
    """meter.track inside tm.track starts at meter's root; tm.track inside it nests in meter."""
    meter = tm.Meter()
    with tm.track("outer") as outer:
        with meter.track("job") as job:
            assert job.path == ("job",)
            assert tm.current() is job
            assert meter.current() is job
            assert DEFAULT_METER.current() is outer
            with tm.track("step") as step:
                assert step.meter is meter
                assert step.path == ("job", "step")
                tm.record(**ONE)
                with meter.track("deeper") as deeper:
                    assert deeper.path == ("job", "step", "deeper")
                assert DEFAULT_METER.current() is outer
        assert tm.current() is outer
        tm.record(**ONE)
    assert meter.report().node("job", "step").usage.calls == 1
    assert tm.report().node("outer").usage.calls == 1


def test_interleaved_meters_find_their_nearest_scope() -> None:
    """m1 a > m2 b > m1 c: c nests under a, and m2.current() inside c is still b."""
    m1, m2 = tm.Meter(), tm.Meter()
    with m1.track("a"), m2.track("b") as b, m1.track("c") as c:
        assert c.path == ("a", "c")
        assert m2.current() is b
        assert m1.current() is c
        m2.record(**ONE)
        m1.record(**ONE)
    assert m2.report().node("b").usage.calls == 1
    assert m1.report().node("a", "c").usage.calls == 1


def test_meter_validates_max_records() -> None:
    """Meter(max_records=0) or a non-int bound raises ValueError naming max_records."""
    with pytest.raises(ValueError, match="max_records"):
        tm.Meter(max_records=0)
    with pytest.raises(ValueError, match="max_records"):
        tm.Meter(max_records=True)


# -- resets ------------------------------------------------------------------------------


def test_reset_zeroes_the_default_meter() -> None:
    """tm.reset() zeroes the total, the entries and the time span; handles stay usable."""
    with tm.track("a") as a:
        tm.record(**ONE)
    tm.reset()
    rep = tm.report()
    assert rep.total == tm.Usage()
    assert rep.root.children == {}
    assert a.entries == 0
    assert rep.meta["started_at"] is None
    with tm.track("a") as again:
        tm.record(**ONE)
    assert again is a
    assert tm.report().node("a").entries == 1


def test_scope_reset_zeroes_only_its_subtree() -> None:
    """a/b.reset() zeroes a/b and a/b/c; a's own calls and sibling a/d keep theirs."""
    with tm.track("a") as a:
        tm.record(**ONE)
        with tm.track("b") as b:
            tm.record(**ONE)
            with tm.track("c"):
                tm.record(**ONE)
        with tm.track("d"):
            tm.record(**ONE)
    b.reset()
    rep = tm.report()
    assert rep.total.calls == 2
    assert rep.node("a").self_usage.calls == 1
    assert rep.node("a", "d").usage.calls == 1
    assert "b" not in rep.node("a").children
    assert a.usage.calls == 2
    assert b.usage == tm.Usage()


def test_scope_reset_recomputes_ancestor_budgets() -> None:
    """After a child's reset the parent's max_tokens budget counts only what is left."""
    with tm.track("p", max_tokens=10) as p:
        with tm.track("c") as c:
            tm.record(**ONE)  # 5 tokens
            tm.record(**ONE)  # 10 tokens: the budget is reached
        with pytest.raises(tm.BudgetExceeded):
            _budgets.before_call(_scope.CURRENT.get())
        c.reset()
        _budgets.before_call(_scope.CURRENT.get())  # 0 of 10 now: allowed
        tm.record(**ONE)
    assert p.usage.total_tokens == 5


def test_reset_subtree_drops_its_records_only() -> None:
    """With keep_records, scope.reset() drops that subtree's records and no others."""
    meter = tm.Meter(keep_records=True)
    with meter.track("a") as a:
        meter.record(**ONE)
    with meter.track("b"):
        meter.record(**ONE)
    a.reset()
    assert [r.path for r in meter.records()] == [("b",)]
    assert meter.report().records_dropped == 0
