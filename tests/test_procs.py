"""Process pools: jobs run in the submitting scope; their usage lands with the result, once."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.pool import ThreadPool
from typing import Any

import pytest
from procs_jobs import (
    deep,
    dies_after_two_calls,
    fails,
    fails_on_three,
    inside_usage,
    job,
    job_star,
    path_and_attributes,
    raises_budget,
    unpicklable_metadata,
    usage_of,
)

import tokenmeter as tm
from tokenmeter import _procs

METHODS = ["fork", "spawn", "forkserver"]


@pytest.fixture(autouse=True)
def _loud_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spawned workers raise internal errors too (they do not load conftest)."""
    monkeypatch.setenv("TOKENMETER_RAISE_INTERNAL_ERRORS", "1")


@pytest.fixture
def no_propagation() -> Iterator[None]:
    """Process propagation off for the test, restored afterwards."""
    assert _procs.propagating_to_processes()
    tm.propagate_to_processes(False)
    try:
        yield
    finally:
        tm.propagate_to_processes(True)


def _expected(indices: range | list[int]) -> tuple[int, int, int, float]:
    """(calls, input, output, cost) of `job` over ``indices``, in its job scope and 'step'."""
    inp = sum(usage_of(i)[0] for i in indices)
    out = sum(usage_of(i)[1] for i in indices)
    cost = sum(usage_of(i)[2] for i in indices)
    return len(indices), inp, out, cost


def _check_phase(rep: tm.Report, names: tuple[str, ...], indices: range | list[int]) -> None:
    node = rep.node(*names)
    calls, inp, out, cost = _expected(indices)
    n = len(indices)
    assert (node.self_usage.calls, node.self_usage.input_tokens) == (n, 2 * n)
    assert node.self_usage.output_tokens == n
    assert node.self_usage.cost_usd == pytest.approx(0.0005 * n, abs=1e-12)
    step = node.child("step")
    assert step.entries == n
    assert (step.usage.calls, step.usage.input_tokens, step.usage.output_tokens) == (
        calls,
        inp,
        out,
    )
    assert step.usage.cost_usd == pytest.approx(cost, abs=1e-12)
    assert node.usage.calls == 2 * n


@pytest.mark.parametrize("method", METHODS)
def test_executor_4_workers_50_jobs_nested_scopes(method: str) -> None:
    """4 workers x 50 executor jobs (submit and map) in nested scopes: exact totals per node."""
    ctx = multiprocessing.get_context(method)
    with tm.track("batch"), ProcessPoolExecutor(4, mp_context=ctx) as pool:
        with tm.track("submitted"):
            futures = [pool.submit(job, i) for i in range(25)]
        with tm.track("mapped"), tm.track("inner"):
            mapped = list(pool.map(job, range(25, 50), chunksize=3))
        paths = {f.result()[0] for f in futures}
        pids = {f.result()[1] for f in futures} | {pid for _, pid in mapped}
    assert paths == {("batch", "submitted")}
    assert {p for p, _ in mapped} == {("batch", "mapped", "inner")}
    assert os.getpid() not in pids
    rep = tm.report()
    _check_phase(rep, ("batch", "submitted"), range(25))
    _check_phase(rep, ("batch", "mapped", "inner"), range(25, 50))
    assert rep.node("batch").entries == 1
    assert rep.node("batch", "mapped").entries == 1
    assert rep.total.calls == 100
    assert rep.node("batch").self_usage.calls == 0


@pytest.mark.parametrize("method", METHODS)
def test_pool_4_workers_50_jobs_nested_scopes(method: str) -> None:
    """4 workers x 50 multiprocessing.Pool jobs through every entry point: exact totals per node."""
    ctx = multiprocessing.get_context(method)
    with tm.track("batch"), ctx.Pool(4) as pool:
        with tm.track("apply"):
            asyncs = [pool.apply_async(job, (i,)) for i in range(8)]
            applied = [pool.apply(job, (i,)) for i in range(8, 10)]
            assert {a.get()[0] for a in asyncs} == {("batch", "apply")}
        with tm.track("map"):
            got = pool.map(job, range(10, 20), chunksize=3)
            got += pool.map_async(job, range(20, 25)).get()
        with tm.track("star"), tm.track("deeper"):
            got += pool.starmap(job_star, [(i, 0) for i in range(25, 30)])
            got += pool.starmap_async(job_star, [(30, 0), (31, 0)]).get()
        with tm.track("imap"):
            got += list(pool.imap(job, range(32, 38)))
            got += list(pool.imap(job, range(38, 44), chunksize=4))
            got += list(pool.imap_unordered(job, range(44, 47)))
            got += list(pool.imap_unordered(job, range(47, 50), chunksize=2))
    assert applied[0][0] == ("batch", "apply")
    assert {p for p, _ in got[:15]} == {("batch", "map")}
    assert {p for p, _ in got[15:22]} == {("batch", "star", "deeper")}
    assert {p for p, _ in got[22:]} == {("batch", "imap")}
    rep = tm.report()
    _check_phase(rep, ("batch", "apply"), range(10))
    _check_phase(rep, ("batch", "map"), range(10, 25))
    _check_phase(rep, ("batch", "star", "deeper"), range(25, 32))
    _check_phase(rep, ("batch", "imap"), range(32, 50))
    assert rep.total.calls == 100


def test_executor_job_that_raises_returns_its_usage() -> None:
    """A job that raises: the caller gets its ValueError, and the call it made is counted."""
    ctx = multiprocessing.get_context("fork")
    with tm.track("failing"), ProcessPoolExecutor(2, mp_context=ctx) as pool:
        future = pool.submit(fails, 7)
        with pytest.raises(ValueError, match="job 7 failed") as info:
            future.result()
        # The usage landed before the exception was handed over.
        assert tm.current().usage.input_tokens == 7
        with pytest.raises(tm.BudgetExceeded) as budget:
            pool.submit(raises_budget).result()
    assert type(info.value) is ValueError
    assert (budget.value.path, budget.value.kind) == (("x",), "max_calls")
    node = tm.report().node("failing")
    assert (node.usage.calls, node.usage.input_tokens) == (2, 12)
    assert node.usage.cost_usd == pytest.approx(0.002, abs=1e-12)


def test_pool_job_that_raises_returns_its_usage() -> None:
    """Pool: a failing apply_async, and a map whose chunk fails midway, bring their usage back."""
    ctx = multiprocessing.get_context("fork")
    errors: list[BaseException] = []
    with tm.track("failing"), ctx.Pool(2) as pool:
        res = pool.apply_async(fails, (4,), error_callback=errors.append)
        with pytest.raises(ValueError, match="job 4 failed"):
            res.get()
        # One chunk [2, 3, 4]: items 2 and 3 ran before 3 raised, 4 never ran.
        with pytest.raises(ValueError, match="three"):
            pool.map(fails_on_three, [0, 1, 2, 3, 4, 5], chunksize=3)
    assert [str(e) for e in errors] == ["job 4 failed"]
    node = tm.report().node("failing")
    assert (node.usage.calls, node.usage.input_tokens) == (1 + 4, 4 + 0 + 1 + 2 + 3)


def test_pool_reused_across_scopes_carries_nothing_between_jobs() -> None:
    """One worker runs jobs from two scopes: each job starts empty and lands in its own scope."""
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        with tm.track("first"):
            first = pool.submit(job, 1).result()
        with tm.track("second"):
            second = pool.submit(inside_usage).result()
        third = pool.submit(inside_usage).result()
    path, calls, nodes, pid = second
    assert pid == first[1] == third[3]
    assert (path, calls) == (("second",), 0)
    assert nodes == [(), ("second",)]  # nothing of the first job's 'step' scope
    assert third[:3] == ((), 0, [()])
    rep = tm.report()
    assert rep.node("first").usage.calls == 2
    assert rep.node("second").usage.calls == 1
    assert rep.root.self_usage.calls == 1
    assert rep.total.calls == 4


def test_usage_is_in_the_tree_before_the_result_is_seen() -> None:
    """Each result, as it is read, already has its job's usage in the parent's tree."""
    ctx = multiprocessing.get_context("fork")
    seen: list[int] = []
    with tm.track("ryw") as scope, ProcessPoolExecutor(2, mp_context=ctx) as pool:
        futures = [pool.submit(job, i) for i in range(6)]
        for n, f in enumerate(as_completed(futures), 1):
            f.result()
            assert scope.usage.calls >= 2 * n
        with ctx.Pool(2) as mp_pool:
            for i in range(3):
                mp_pool.apply_async(job, (i,), callback=lambda _r: seen.append(scope.usage.calls))
            mp_pool.close()
            mp_pool.join()
    assert sorted(seen)[0] >= 14
    assert tm.report().node("ryw").usage.calls == 18


def test_worker_killed_mid_job_loses_that_job_only() -> None:
    """A worker killed mid-job: that job's calls are lost (as documented); finished jobs stay."""
    ctx = multiprocessing.get_context("fork")
    with tm.track("killed"), ProcessPoolExecutor(2, mp_context=ctx) as pool:
        done = [pool.submit(job, i).result() for i in range(3)]
        doomed = pool.submit(dies_after_two_calls, 0)
        with pytest.raises(BrokenProcessPool):
            doomed.result()
    assert len(done) == 3
    node = tm.report().node("killed")
    _calls, inp, out, _cost = _expected(range(3))
    assert node.usage.calls == 6  # the two calls of the killed job are not there
    assert node.usage.input_tokens == 6 + inp
    assert node.usage.output_tokens == 3 + out


def test_records_come_back_with_paths_and_attributes() -> None:
    """With keep_records, a job's records come back with their scope path and attributes."""
    ctx = multiprocessing.get_context("spawn")
    meter = tm.Meter(keep_records=True)
    with meter.track("tenant", team="search", handle=threading.Lock()), ctx.Pool(1) as pool:
        path, attributes = pool.apply(path_and_attributes)
    assert path == ("tenant",)
    assert attributes == {"team": "search"}  # an unpicklable attribute stays home
    rep = meter.report()
    assert [(r.path, dict(r.attributes)) for r in rep.records] == [(("tenant",), attributes)]
    assert rep.node("tenant").usage.calls == 1
    assert tm.report().total.calls == 0  # another meter's scope: nothing on the default one


def test_records_that_cannot_be_pickled_stay_home_and_the_numbers_come_back() -> None:
    """A record whose metadata cannot be pickled: the numbers come back, the records are dropped."""
    ctx = multiprocessing.get_context("fork")
    meter = tm.Meter(keep_records=True)
    with meter.track("meta"), ProcessPoolExecutor(1, mp_context=ctx) as pool:
        assert pool.submit(unpicklable_metadata).result() == 2
    rep = meter.report()
    node = rep.node("meta")
    assert (node.usage.calls, node.usage.input_tokens) == (2, 10)
    assert (len(rep.records), rep.records_dropped) == (0, 2)


def test_a_job_deeper_than_the_recursion_limit_comes_back() -> None:
    """A job opening 1,500 nested scopes: its record lands at the bottom, entries on the way."""
    ctx = multiprocessing.get_context("fork")
    meter = tm.Meter()  # its own meter: reset() of so deep a tree is not this test's subject
    with meter.track("deep") as top, ProcessPoolExecutor(1, mp_context=ctx) as pool:
        assert pool.submit(deep, 1500).result() == 1500
    node = top
    for i in range(1500):
        node = node.children[f"d{i}"]
        assert node.entries == 1
    assert len(node.path) == 1501
    assert (node.self_usage.calls, node.self_usage.input_tokens) == (1, 3)


def test_switched_off_jobs_run_outside_every_scope(no_propagation: None) -> None:
    """With propagate_to_processes(False) a job runs outside every scope, and nothing comes back."""
    # spawn: a forked worker starts with a copy of whatever scope its forking thread had.
    ctx = multiprocessing.get_context("spawn")
    with tm.track("off"), ProcessPoolExecutor(1, mp_context=ctx) as pool:
        path, _pid = pool.submit(job, 0).result()
    assert path == ()
    assert tm.report().total.calls == 0
    tm.propagate_to_processes(True)
    with tm.track("on"), ProcessPoolExecutor(1, mp_context=ctx) as pool:
        assert pool.submit(job, 0).result()[0] == ("on",)
    assert tm.report().total.calls == 2


def test_thread_pool_jobs_run_in_the_scope() -> None:
    """multiprocessing's ThreadPool runs its jobs in the submitting scope, results untouched."""
    with tm.track("threads"), ThreadPool(2) as pool:
        out: list[Any] = pool.map(job, range(4))
        out.append(pool.apply(job, (4,)))
        out.extend(pool.imap(job, range(5, 9), chunksize=2))
    assert {p for p, _ in out} == {("threads",)}
    assert tm.report().node("threads").usage.calls == 18


def test_import_leaves_pool_modules_alone() -> None:
    """`import tokenmeter` loads no pool module (nor _carry); importing a pool module wraps it."""
    import subprocess
    import sys

    code = (
        "import sys, tokenmeter\n"
        "print(sorted(m for m in ('multiprocessing.pool', 'concurrent.futures.process', "
        "'tokenmeter._carry') if m in sys.modules))\n"
        "from multiprocessing.pool import Pool\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "print(Pool.apply_async.__module__, ProcessPoolExecutor.submit.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "tokenmeter._procs tokenmeter._procs"]
