"""Manual records, reports, and memory per call."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable
from itertools import repeat
from time import perf_counter_ns, thread_time_ns
from typing import Any

import harness
from harness import Case, Measured, Probe, Runner, memory_per_call

TITLE = "Records and reports"
ORDER = 20

MODEL = "gpt-4o-mini"


def _record_kwargs() -> dict[str, Any]:
    return {"model": MODEL, "input_tokens": 10, "output_tokens": 20, "cost_usd": 0.000015}


def record_one_thread() -> Runner:
    import tokenmeter as tm

    def loop(loops: int) -> None:
        record = tm.record
        for _ in repeat(None, loops):
            record(model=MODEL, input_tokens=10, output_tokens=20, cost_usd=0.000015)

    # The scope stays open in a context of its own, entered once here.
    ctx = contextvars.copy_context()
    ctx.run(lambda: tm.track("records").__enter__())

    def run(loops: int) -> None:
        ctx.run(loop, loops)

    tm.reset()
    run(3)
    calls = tm.report().node("records").usage.calls
    if calls != 3:
        raise AssertionError(f"3 record() calls counted {calls}")
    return run


def record_two_threads() -> Runner:
    """Two threads record into one meter at once: the wall time of all, the CPU time of each."""
    import tokenmeter as tm

    def run(loops: int) -> Measured:
        record = tm.record
        start = threading.Barrier(3)
        cpu = [0, 0]

        def worker(i: int) -> None:
            with tm.track(f"worker{i}"):
                start.wait()
                c0 = thread_time_ns()
                for _ in repeat(None, loops):
                    record(model=MODEL, input_tokens=10, output_tokens=20, cost_usd=0.000015)
                cpu[i] = thread_time_ns() - c0

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        start.wait()
        t0 = perf_counter_ns()
        for t in threads:
            t.join()
        return Measured(perf_counter_ns() - t0, cpu[0] + cpu[1])

    tm.reset()
    run(3)
    calls = tm.report().total.calls
    if calls != 6:
        raise AssertionError(f"2 threads x 3 record() calls counted {calls}")
    return run


def report_case(scopes: int) -> Callable[[], Runner]:
    """``meter.report()`` of a tree of ``scopes`` scopes with one call each, 10 children a node."""

    def setup() -> Runner:
        import tokenmeter as tm

        n = min(scopes, 1000) if harness.quick() else scopes
        meter = tm.Meter()
        with contextlib.ExitStack() as stack:
            # Breadth-first: node i's parent is node (i - 1) // 10.
            stack.enter_context(meter.track("n0"))
            meter.record(model=MODEL, input_tokens=10, output_tokens=20, cost_usd=1.5e-5)
            made = 1
            level = [()]  # paths of the last level
            while made < n:
                nxt = []
                for path in level:
                    for c in range(10):
                        if made >= n:
                            break
                        child = (*path, f"c{c}")
                        with contextlib.ExitStack() as inner:
                            for name in child:
                                inner.enter_context(meter.track(name))
                            meter.record(
                                model=MODEL, input_tokens=10, output_tokens=20, cost_usd=1.5e-5
                            )
                        made += 1
                        nxt.append(child)
                level = nxt
        total = meter.report().total.calls
        if total != n:
            raise AssertionError(f"a tree of {n} scopes reports {total} calls")

        def run(loops: int) -> None:
            report = meter.report
            for _ in repeat(None, loops):
                report()

        return run

    return setup


CASES = [
    Case("record_1t", "`tm.record(...)`, cost given, one thread", record_one_thread, hot=True),
    Case(
        "record_2t",
        "`tm.record(...)`, two threads at once (wall: all calls; CPU: each thread's)",
        record_two_threads,
        ops=2,
    ),
    Case("report10", "`meter.report()` of a tree of 10 scopes", report_case(10), hot=True),
    Case("report1k", "`meter.report()` of a tree of 1,000 scopes", report_case(1000), hot=True),
    Case(
        "report100k",
        "`meter.report()` of a tree of 100,000 scopes",
        report_case(100_000),
        rounds=5,
    ),
]


# -- memory per call --------------------------------------------------------------------


def memory(quick: bool) -> dict[str, Any]:
    """Bytes retained per ``meter.record()`` call, records off and on."""
    kw = _record_kwargs()

    def call_for(meter: Any) -> Callable[[], Any]:
        return lambda: meter.record(**kw)

    return memory_per_call(2_000 if quick else 100_000, call_for)


PROBES = [Probe("memory", "memory per `record()` call (tracemalloc)", memory)]
