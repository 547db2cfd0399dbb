"""Scopes follow work into threads, executors and asyncio tasks; aggregation is thread-safe."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tokenmeter as tm
from tokenmeter import _budgets, _scope, _threads
from tokenmeter._meter import DEFAULT_METER

ONE = {"model": "m", "input_tokens": 3, "output_tokens": 2, "cost_usd": 0.01}


@pytest.fixture
def no_propagation() -> Iterator[None]:
    """Automatic propagation off for the test, restored afterwards."""
    assert _threads.propagating_to_threads()
    tm.propagate_to_threads(False)
    try:
        yield
    finally:
        tm.propagate_to_threads(True)


def _in_thread(fn: Callable[[], Any], thread_cls: type[threading.Thread] = threading.Thread) -> Any:
    out: list[Any] = []
    t = thread_cls(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_thread_inherits_scope() -> None:
    """A Thread started inside scope A sees A as current; its record lands on A."""
    with tm.track("A") as a:
        seen = _in_thread(lambda: (tm.record(**ONE), tm.current())[1])
    assert seen is a
    assert tm.report().node("A").usage.calls == 1
    assert tm.current() is DEFAULT_METER.root


def test_thread_subclass_with_run_inherits_scope() -> None:
    """A Thread subclass overriding run() started in scope A runs in A."""
    seen: list[tm.Scope] = []

    class Worker(threading.Thread):
        def run(self) -> None:
            seen.append(tm.current())

    with tm.track("A") as a:
        w = Worker()
        w.start()
        w.join()
    assert seen == [a]


def test_thread_started_outside_scopes_is_on_root() -> None:
    """A Thread created in scope A but started outside any scope records on the root."""
    seen: list[tm.Scope] = []
    with tm.track("A"):
        t = threading.Thread(target=lambda: seen.append(tm.current()))
    t.start()
    t.join()
    assert seen == [DEFAULT_METER.root]


def test_thread_pool_inherits_scope() -> None:
    """ThreadPoolExecutor.submit and .map inside scope A run the jobs in A."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex, tm.track("A") as a:
        fut = ex.submit(lambda: (tm.record(**ONE), tm.current())[1])
        mapped = list(ex.map(lambda _: tm.current(), range(4)))
        assert fut.result() is a
    assert mapped == [a] * 4
    assert tm.report().node("A").usage.calls == 1


def test_pool_worker_created_in_scope_serves_later_jobs_on_root() -> None:
    """A pool worker started inside A, given a job submitted outside any scope, records on root."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
        with tm.track("A") as a:
            assert ex.submit(tm.current).result() is a  # the worker thread is created here
        seen = ex.submit(lambda: (tm.record(**ONE), tm.current())[1]).result()
        with tm.track("B") as b:
            assert ex.submit(tm.current).result() is b
    assert seen is DEFAULT_METER.root
    rep = tm.report()
    assert rep.root.self_usage.calls == 1
    assert rep.node("A").usage.calls == 0


async def test_run_in_executor_inherits_scope() -> None:
    """loop.run_in_executor(None, fn) inside scope A runs fn in A."""
    loop = asyncio.get_running_loop()
    async with tm.track("A") as a:
        seen = await loop.run_in_executor(None, tm.current)
    assert seen is a


async def test_run_in_executor_own_pool_inherits_scope() -> None:
    """loop.run_in_executor with the user's own ThreadPoolExecutor also runs fn in scope A."""
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
        async with tm.track("A") as a:
            seen = await loop.run_in_executor(ex, tm.current)
        outside = await loop.run_in_executor(ex, tm.current)
    assert seen is a
    assert outside is DEFAULT_METER.root


async def test_to_thread_inherits_scope() -> None:
    """asyncio.to_thread inside scope A runs the function in A; its record lands on A."""
    async with tm.track("A") as a:
        seen = await asyncio.to_thread(lambda: (tm.record(**ONE), tm.current())[1])
    assert seen is a
    assert tm.report().node("A").usage.calls == 1


def test_propagation_off(no_propagation: None) -> None:
    """With propagate_to_threads(False), threads and pool jobs started in A run on the root."""
    assert not _threads.propagating_to_threads()
    with tm.track("A"):
        seen_thread = _in_thread(tm.current)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
            seen_pool = ex.submit(tm.current).result()
    assert seen_thread is DEFAULT_METER.root
    assert seen_pool is DEFAULT_METER.root


def test_propagation_can_be_turned_back_on(no_propagation: None) -> None:
    """propagate_to_threads(True) after False restores inheritance; repeated calls are harmless."""
    tm.propagate_to_threads(False)
    tm.propagate_to_threads(True)
    tm.propagate_to_threads(True)
    with tm.track("A") as a:
        assert _in_thread(tm.current) is a
    tm.propagate_to_threads(False)
    assert threading.Thread.start is _threads._orig_thread_start
    assert concurrent.futures.ThreadPoolExecutor.submit is _threads._orig_submit


def test_environment_switch_turns_propagation_off() -> None:
    """TOKENMETER_PROPAGATE_THREADS=0 at import leaves threading and the pool untouched."""
    code = (
        "import threading, concurrent.futures as cf\n"
        "start, submit = threading.Thread.start, cf.ThreadPoolExecutor.submit\n"
        "import tokenmeter as tm\n"
        "from tokenmeter import _threads\n"
        "assert threading.Thread.start is start and cf.ThreadPoolExecutor.submit is submit\n"
        "with tm.track('A'):\n"
        "    t = threading.Thread(target=lambda: print(tm.current().path))\n"
        "    t.start(); t.join()\n"
        "print(_threads.propagating_to_threads())\n"
    )
    env = {**os.environ, "TOKENMETER_PROPAGATE_THREADS": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split("\n") == ["()", "False", ""]


def test_bind_carries_the_scope(no_propagation: None) -> None:
    """tm.bind(fn) made in A runs fn in A in any thread, even with propagation off."""
    with tm.track("A") as a:
        bound = tm.bind(lambda x: (tm.record(**ONE), tm.current(), x * 2)[1:])
    assert _in_thread(lambda: bound(21)) == (a, 42)
    assert bound(1) == (a, 2)
    assert tm.current() is DEFAULT_METER.root
    assert tm.report().node("A").usage.calls == 2


def test_bind_snapshot_carries_the_scope(no_propagation: None) -> None:
    """tm.bind_snapshot(fn) made in A runs fn in a snapshot of A's context in another thread."""
    with tm.track("A") as a:
        bound = tm.bind_snapshot(tm.current)
    assert _in_thread(bound) is a


def test_use_scope_in_a_raw_thread(no_propagation: None) -> None:
    """use_scope(a) makes a current in a thread without adding an entry; records land on a."""
    with tm.track("A", module="M") as a:
        pass

    def work() -> tuple[tm.Scope, tm.Scope]:
        with tm.use_scope(a) as s:
            tm.record(**ONE)
            inner = tm.current()
        return s, inner

    s, inner = _in_thread(work)
    assert s is a
    assert inner is a
    assert a.entries == 1
    assert a.usage.calls == 1
    with pytest.raises(TypeError, match="Scope"):
        tm.use_scope("A")  # type: ignore[arg-type]


def test_use_scope_keeps_the_budget() -> None:
    """use_scope of a scope under a budget: the budget still refuses calls once reached."""

    with tm.track("p", max_calls=1), tm.track("c") as c:
        tm.record(**ONE)

    def work() -> None:
        with tm.use_scope(c):
            _budgets.before_call(_scope.CURRENT.get())

    with pytest.raises(tm.BudgetExceeded):
        work()


async def test_gather_of_100_tasks_each_in_its_own_scope() -> None:
    """100 gathered tasks, each in scope task<i>, each record exactly one call on their own node."""

    async def work(i: int) -> tuple[str, ...]:
        async with tm.track(f"task{i}"):
            await asyncio.sleep(0.001 * (i % 3))
            tm.record(**ONE)
            await asyncio.sleep(0)
            return tm.current().path

    async with tm.track("batch") as batch:
        paths = await asyncio.gather(*(work(i) for i in range(100)))
        assert tm.current() is batch
    assert paths == [("batch", f"task{i}") for i in range(100)]
    rep = tm.report()
    assert len(rep.node("batch").children) == 100
    assert all(rep.node("batch", f"task{i}").usage.calls == 1 for i in range(100))
    assert rep.node("batch").usage.calls == 100


async def test_tasks_inherit_the_scope_they_were_created_in() -> None:
    """A task created in A runs in A even when it runs after A is left; outside it is the root."""
    async with tm.track("A") as a:
        probe = asyncio.create_task(_current_after_sleep())
    outside = asyncio.create_task(_current_after_sleep())
    assert await probe is a
    assert await outside is DEFAULT_METER.root


async def _current_after_sleep() -> tm.Scope:
    await asyncio.sleep(0.001)
    return tm.current()


def test_eight_threads_record_exactly() -> None:
    """8 threads x 20,000 records (3 in, 2 out, $1e-6): 160,000/480,000/320,000/800,000, $0.16."""
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(20_000):
            tm.record(model="gpt-4o-mini", input_tokens=3, output_tokens=2, cost_usd=0.000001)

    with tm.track("load"):
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    total = tm.report().total
    assert total.calls == 160_000
    assert total.input_tokens == 480_000
    assert total.output_tokens == 320_000
    assert total.total_tokens == 800_000
    assert total.cost_usd == 0.16
    assert tm.report().node("load").self_usage == total


def test_threads_enter_scopes_concurrently() -> None:
    """8 threads entering the same 'sample' 2,000 times each: one node, entries == 16,000."""

    def work() -> None:
        for _ in range(2_000):
            with tm.track("sample"):
                tm.record(**ONE)

    with tm.track("root"):
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    node = tm.report().node("root", "sample")
    assert node.entries == 16_000
    assert node.usage.calls == 16_000
    assert node.usage.cost_usd == 160.0


def test_a_patch_installed_after_tokenmeters_survives_turning_propagation_off() -> None:
    """Off leaves a later wrapper of Thread.start/submit in place, and ours passes through."""
    ours_start, ours_submit = threading.Thread.start, concurrent.futures.ThreadPoolExecutor.submit
    seen: list[str] = []

    def foreign_start(self: threading.Thread) -> None:
        seen.append("start")
        ours_start(self)

    def foreign_submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        seen.append("submit")
        return ours_submit(self, fn, *args, **kwargs)

    threading.Thread.start = foreign_start  # type: ignore[method-assign]
    concurrent.futures.ThreadPoolExecutor.submit = foreign_submit  # type: ignore[method-assign]
    try:
        tm.propagate_to_threads(False)
        assert threading.Thread.start is foreign_start
        assert concurrent.futures.ThreadPoolExecutor.submit is foreign_submit
        with tm.track("A"):
            off = _in_thread(tm.current)
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
                off_pool = ex.submit(tm.current).result()
        tm.propagate_to_threads(True)
        assert threading.Thread.start is foreign_start
        with tm.track("B") as b:
            on = _in_thread(tm.current)
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
                on_pool = ex.submit(tm.current).result()
    finally:
        threading.Thread.start = ours_start  # type: ignore[method-assign]
        concurrent.futures.ThreadPoolExecutor.submit = ours_submit  # type: ignore[method-assign]
    assert (off, off_pool) == (DEFAULT_METER.root, DEFAULT_METER.root)
    assert (on, on_pool) == (b, b)
    assert seen.count("submit") == 2
    assert seen.count("start") >= 2  # the pools' worker threads start through it too


def test_turning_propagation_on_wraps_a_patch_installed_while_it_was_off(
    no_propagation: None,
) -> None:
    """On wraps what is in place (a patch made while off keeps running); off puts it back."""
    plain = threading.Thread.start
    seen: list[str] = []

    def foreign_start(self: threading.Thread) -> None:
        seen.append("start")
        plain(self)

    threading.Thread.start = foreign_start  # type: ignore[method-assign]
    try:
        tm.propagate_to_threads(True)
        assert threading.Thread.start is _threads._thread_start
        with tm.track("A") as a:
            assert _in_thread(tm.current) is a
        tm.propagate_to_threads(False)
        assert threading.Thread.start is foreign_start
    finally:
        threading.Thread.start = plain  # type: ignore[method-assign]
    assert seen == ["start"]
