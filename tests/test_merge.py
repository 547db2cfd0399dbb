"""Merging reports (`Report.merge`) and finding a node anywhere (`Report.find`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokenmeter as tm

# One call: (path, model, module, input, output, cost in 1e-8 USD or None, failed, entered)
Call = tuple[tuple[str, ...], str, "str | None", int, int, "int | None", bool]

CALLS = st.tuples(
    st.lists(st.sampled_from("abc"), max_size=3).map(tuple),
    st.sampled_from(("m1", "m2", "openai/m3")),
    st.sampled_from((None, "tools")),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.one_of(st.none(), st.integers(0, 10**9)),
    st.booleans(),
)


def _run(calls: list[Any], keep_records: bool = True) -> tm.Report:
    """A meter's report after these calls, each made inside its scope path (entered once each)."""
    meter = tm.Meter(keep_records=keep_records)
    for i, (path, model, module, inp, out, cost, failed) in enumerate(calls):
        scopes = [meter.track(p) for p in path]
        for s in scopes:
            s.__enter__()
        meter.record(
            model=model,
            module=module,
            input_tokens=inp,
            output_tokens=out,
            cost_usd=None if cost is None else cost / 10**8,
            failed=failed,
            timestamp=1_700_000_000.0 + i,
        )
        for s in reversed(scopes):
            s.__exit__(None, None, None)
    return meter.report()


def _numbers(rep: tm.Report) -> dict[tuple[str, ...], Any]:
    """Every node's entries, own and inclusive usage and breakdown, by path."""
    return {n.path: (n.entries, n.self_usage, n.usage, dict(n.breakdown)) for n in rep.walk()}


def _state(rep: tm.Report) -> Any:
    """Everything a merge must agree on, order of children and equal-time records aside."""
    meta = {k: v for k, v in rep.meta.items() if k != "created_at"}
    recs = sorted(json.dumps(r.to_dict(), sort_keys=True) for r in rep.records)
    return (_numbers(rep), rep.by_model(), rep.by_module(), meta, recs, rep.records_dropped)


SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(st.lists(CALLS, max_size=8), st.lists(CALLS, max_size=8), st.lists(CALLS, max_size=8))
def test_merge_is_associative_and_commutative(a: list[Any], b: list[Any], c: list[Any]) -> None:
    """(a+b)+c == a+(b+c) == c+b+a == the report of all the calls made in one meter."""
    ra, rb, rc = _run(a), _run(b), _run(c)
    left = ra.merge(rb).merge(rc)
    right = ra.merge(rb.merge(rc))
    swapped = tm.Report.merge(rc, rb, ra)
    assert _state(left) == _state(right) == _state(swapped)
    one = _run([*a, *b, *c])
    assert _numbers(left) == _numbers(one)
    assert left.total == one.total
    assert left.by_provider() == one.by_provider()
    assert left.by_operation() == one.by_operation()


def test_merge_sums_node_by_node_exactly() -> None:
    """Two runs of one tree merge to doubled entries, tokens, costs and counts on every node."""
    calls = [
        (("agent",), "m1", None, 100, 10, 100_000, False),
        (("agent", "plan"), "m1", "core", 200, 20, None, False),
        (("agent", "plan"), "m2", None, 300, 30, 33, True),
    ]
    one = _run(calls)
    both = one.merge(one)
    plan = both.node("agent", "plan")
    assert plan.entries == 4  # entered twice per run
    assert plan.self_usage == tm.Usage(
        calls=4, input_tokens=1000, output_tokens=100, cost_usd=0.00000066,
        unpriced_calls=2, failed_calls=2,
    )  # fmt: skip
    assert both.node("agent").usage == tm.Usage(
        calls=6, input_tokens=1200, output_tokens=120, cost_usd=0.00200066,
        unpriced_calls=2, failed_calls=2,
    )  # fmt: skip
    assert both.node("agent").entries == 6  # entered for each of 3 calls, twice
    assert both.by_module()["core"].calls == 2
    assert len(both.records) == 6
    assert both.meta["started_at"] == one.meta["started_at"]
    assert both.meta["records_kept"] is True


def test_merge_costs_are_exact_sums() -> None:
    """A thousand $0.1 reports merge to exactly $100.0 (integer cost units, no float drift)."""
    meter = tm.Meter()
    meter.record(model="m", input_tokens=1, output_tokens=1, cost_usd=0.1)
    rep = meter.report()
    merged = tm.Report.merge(*[rep] * 1000)
    assert merged.total.cost_usd == 100.0
    assert merged.total.calls == 1000


def test_merge_time_span_records_and_dropped() -> None:
    """Time span: earliest start, latest end; records pooled oldest first; dropped counts add."""
    early = tm.Meter(keep_records=True, max_records=1)
    early.record(model="m", input_tokens=1, output_tokens=0, timestamp=1_000.0)
    early.record(model="m", input_tokens=2, output_tokens=0, timestamp=2_000.0)
    late = tm.Meter(keep_records=True)
    late.record(model="m", input_tokens=3, output_tokens=0, timestamp=1_500.0)
    late.record(model="m", input_tokens=4, output_tokens=0, timestamp=9_000.0)
    merged = late.report().merge(early.report())
    assert merged.meta["started_at"] == "1970-01-01T00:16:40+00:00"
    assert merged.meta["ended_at"] == "1970-01-01T02:30:00+00:00"
    assert [r.input_tokens for r in merged.records] == [3, 2, 4]
    assert merged.records_dropped == 1
    assert merged.total.input_tokens == 10


def test_merge_without_records_says_records_were_not_kept() -> None:
    """Merging a report that kept records with one that did not: records_kept is False."""
    kept = _run([((), "m1", None, 1, 1, 1, False)], keep_records=True)
    not_kept = _run([((), "m1", None, 1, 1, 1, False)], keep_records=False)
    merged = kept.merge(not_kept)
    assert merged.meta["records_kept"] is False
    assert len(merged.records) == 1
    assert merged.total.calls == 2


def test_merge_flags_different_prices() -> None:
    """Reports priced differently merge as 'mixed', naming what differs; the text says so."""
    a = _run([((), "m1", None, 1, 1, 1, False)])
    b = _run([((), "m1", None, 1, 1, 1, False)])
    a.meta["prices"] = {"source": "litellm", "litellm_version": "1.0", "cost_map": {}, "custom": {}}
    b.meta["prices"] = {
        "source": "litellm",
        "litellm_version": "1.1",
        "cost_map": {},
        "custom": {"m1": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
    }
    merged = a.merge(b)
    prices = merged.meta["prices"]
    assert prices["source"] == "mixed"
    assert prices["differences"] == ["custom.m1", "litellm_version"]
    assert prices["variants"] == sorted(
        [a.meta["prices"], b.meta["prices"]], key=lambda p: json.dumps(p, sort_keys=True)
    )
    assert b.merge(a).meta["prices"] == prices
    assert merged.merge(a).meta["prices"] == prices  # a mixed report merges like its parts
    assert (
        "! merged from reports priced differently (custom.m1, litellm_version)"
        in str(merged).splitlines()[1]
    )
    assert a.merge(a).meta["prices"] == a.meta["prices"]


def test_merge_same_prices_read_at_different_times_are_one_source() -> None:
    """Two processes that read the same price map at different times are not flagged."""
    a = _run([((), "m1", None, 1, 1, 1, False)])
    b = _run([((), "m1", None, 1, 1, 1, False)])
    base = {"source": "litellm", "litellm_version": "1.0", "custom": {}}
    a.meta["prices"] = {**base, "cost_map": {"source": "bundled", "loaded_at": "t2"}}
    b.meta["prices"] = {**base, "cost_map": {"source": "bundled", "loaded_at": "t1"}}
    assert a.merge(b).meta["prices"] == b.meta["prices"]
    assert b.merge(a).meta["prices"] == b.meta["prices"]


def test_merge_reports_of_different_scopes() -> None:
    """Scope reports merge under the deepest path they share, each node at its own path."""
    meter = tm.Meter()
    with meter.track("run"):
        with meter.track("a") as a:
            meter.record(model="m", input_tokens=1, output_tokens=0)
        with meter.track("b") as b:
            meter.record(model="m", input_tokens=2, output_tokens=0)
            meter.record(model="m", input_tokens=4, output_tokens=0)
    merged = a.report().merge(b.report())
    assert merged.root.path == ("run",)
    assert merged.root.entries == 0  # neither report saw "run" itself entered
    assert merged.node("a").usage.input_tokens == 1
    assert merged.node("b").usage.calls == 2
    assert merged.total.input_tokens == 7


def test_merge_rejects_non_reports() -> None:
    """Report.merge(report, dict) raises TypeError naming the argument."""
    with pytest.raises(TypeError, match="argument 1 is dict"):
        tm.Report.merge(tm.report(), {})  # type: ignore[arg-type]


WORKER = textwrap.dedent(
    """
    import sys
    import tokenmeter as tm

    meter = tm.Meter(keep_records=True)
    part = int(sys.argv[2])
    for i in range(part * 15, part * 15 + 15):
        with meter.track("pipeline"), meter.track(f"stage{i % 3}", module="etl"):
            meter.record(model="gpt-4o-mini", input_tokens=100 + i, output_tokens=i,
                         timestamp=1_700_000_000.0 + i)
            if i % 4 == 0:
                meter.record(model="my-unpriced-model", input_tokens=i, output_tokens=1,
                             failed=True, timestamp=1_700_000_000.5 + i)
    meter.report().save(sys.argv[1], include_records=True)
    """
)


def test_merge_of_saved_files_from_processes_equals_one_process(tmp_path: Path) -> None:
    """Report.merge of files saved by 2 processes equals the report of the same work in one."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"part{n}.json"), str(n)], env=env
        )
        for n in range(2)
    ]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    merged = tm.Report.merge(*(tm.Report.load(tmp_path / f"part{n}.json") for n in range(2)))

    one = tm.Meter(keep_records=True)
    for i in range(30):
        with one.track("pipeline"), one.track(f"stage{i % 3}", module="etl"):
            one.record(model="gpt-4o-mini", input_tokens=100 + i, output_tokens=i,
                       timestamp=1_700_000_000.0 + i)  # fmt: skip
            if i % 4 == 0:
                one.record(model="my-unpriced-model", input_tokens=i, output_tokens=1,
                           failed=True, timestamp=1_700_000_000.5 + i)  # fmt: skip
    single = one.report()
    assert _numbers(merged) == _numbers(single)
    assert merged.total.calls == 38
    assert merged.total.unpriced_calls == 8
    assert merged.node("pipeline").entries == 30
    assert merged.node("pipeline", "stage0").entries == 10
    assert merged.by_model() == single.by_model()
    assert [r.to_dict() for r in merged.records] == [r.to_dict() for r in single.records]
    assert (merged.meta["started_at"], merged.meta["ended_at"]) == (
        single.meta["started_at"],
        single.meta["ended_at"],
    )
    assert merged.meta["prices"]["source"] == "litellm"  # same map in every process: not mixed
    assert merged.meta["prices"]["litellm_version"] == single.meta["prices"]["litellm_version"]


# -- find ---------------------------------------------------------------------------------


def _tree() -> tm.Report:
    meter = tm.Meter()
    with meter.track("main"):
        with meter.track("planner"), meter.track("search"):
            meter.record(model="m", input_tokens=1, output_tokens=0)
        with meter.track("critic"), meter.track("search"):
            meter.record(model="m", input_tokens=2, output_tokens=0)
        with meter.track("a/b"):
            meter.record(model="m", input_tokens=4, output_tokens=0)
    return meter.report()


def test_find_by_name_anywhere() -> None:
    """find('critic') returns the one node of that name, however deep."""
    rep = _tree()
    assert rep.find("critic").path == ("main", "critic")
    assert rep.find("critic").usage.input_tokens == 2
    assert rep.find("main").path == ("main",)


def test_find_by_path_suffix() -> None:
    """A '/'-joined suffix or a tuple of names picks one of several nodes of the same name."""
    rep = _tree()
    assert rep.find("planner/search").usage.input_tokens == 1
    assert rep.find(("critic", "search")).usage.input_tokens == 2
    assert rep.find("main/critic/search").path == ("main", "critic", "search")
    assert rep.find("a/b").path == ("main", "a/b")  # a name holding '/' is found whole
    assert [n.path for n in rep.find_all("search")] == [
        ("main", "planner", "search"),
        ("main", "critic", "search"),
    ]


def test_find_names_what_went_wrong() -> None:
    """No match and several matches raise KeyError; an empty name raises ValueError."""
    rep = _tree()
    with pytest.raises(KeyError, match="no scope named 'nope'"):
        rep.find("nope")
    with pytest.raises(KeyError, match="2 scopes match 'search': 'main/planner/search', "
                       "'main/critic/search'; pass more of the path"):  # fmt: skip
        rep.find("search")
    with pytest.raises(KeyError, match="no scope"):
        rep.find("ner/search")  # a suffix matches whole names only
    with pytest.raises(ValueError, match="non-empty"):
        rep.find("")
