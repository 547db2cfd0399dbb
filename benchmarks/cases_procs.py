"""Process-pool jobs: what carrying the scope out and the usage back adds to each job."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from itertools import repeat
from typing import Any

from harness import Case, Runner, Unavailable

TITLE = "Process-pool jobs"
ORDER = 60

MODEL = "gpt-4o-mini"


def one_call(i: int) -> int:
    """The job: one manual record, returns its argument."""
    import tokenmeter as tm

    tm.record(model=MODEL, input_tokens=10, output_tokens=20, cost_usd=0.000015)
    return i


def _carry() -> Any:
    try:
        from tokenmeter import _carry
    except ImportError as exc:
        raise Unavailable("no process-pool propagation in this version") from exc
    return _carry


def _round_trip(carried: bool) -> Callable[[], Runner]:
    """A job's trip without the pool: pickle the job, run it, pickle the result back, unpickle.

    The difference between the carried and the plain row is what tokenmeter adds
    to every job: the scope's context pickled out, a fresh meter in the worker,
    the usage exported, pickled back and added to the submitting meter.
    """

    def setup() -> Runner:
        import tokenmeter as tm

        carry = _carry()

        def run(loops: int) -> None:
            dumps, loads = pickle.dumps, pickle.loads
            with tm.track("jobs"):
                for i in repeat(0, loops):
                    fn = carry.Job(one_call, carry.context()) if carried else one_call
                    loads(dumps(loads(dumps(fn))(i)))

        tm.reset()
        run(3)
        calls = tm.report().node("jobs").usage.calls
        if calls != 3:
            raise AssertionError(f"3 jobs counted {calls} calls")
        return run

    return setup


def _pool(carried: bool) -> Callable[[], Runner]:
    """One job through a real ProcessPoolExecutor (1 forked worker), submit to result."""

    def setup() -> Runner:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        import tokenmeter as tm

        _carry()
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))

        def run(loops: int) -> None:
            tm.propagate_to_processes(carried)
            try:
                with tm.track("pool"):
                    for i in repeat(0, loops):
                        pool.submit(one_call, i).result()
            finally:
                tm.propagate_to_processes(True)

        tm.reset()
        run(3)
        calls = tm.report().total.calls
        if calls != (3 if carried else 0):
            raise AssertionError(f"3 pool jobs brought back {calls} calls")
        return run

    return setup


CASES = [
    Case(
        "procs_trip_plain",
        "job trip without a pool, plain (pickle out, run, pickle back)",
        _round_trip(False),
    ),
    Case(
        "procs_trip_carried",
        "job trip without a pool, scope carried and usage back",
        _round_trip(True),
    ),
    Case(
        "procs_pool_plain",
        "`ProcessPoolExecutor` job, 1 forked worker, propagation off",
        _pool(False),
        rounds=3,
    ),
    Case(
        "procs_pool_carried",
        "`ProcessPoolExecutor` job, 1 forked worker, scope carried",
        _pool(True),
        rounds=3,
    ),
]
