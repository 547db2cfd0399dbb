"""Process pools with real LiteLLM calls (mock responses): the numbers of one process; budgets."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import litellm
import pytest
from procs_jobs import capped_inside, llm_calls, llm_until_refused, nested_until_refused

import tokenmeter as tm

# forkserver, not fork: this process runs LiteLLM's logging threads, and a process forked
# while one of them waits on its queue can hang in that queue (Python warns of fork in a
# threaded process). The server imports litellm once; its workers inherit it.
FORK = multiprocessing.get_context("forkserver")
FORK.set_forkserver_preload(["litellm", "tokenmeter", "procs_jobs"])


def _ask() -> None:
    litellm.completion(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], mock_response="hello"
    )


def _work(meter: tm.Meter, pool: ProcessPoolExecutor | None) -> None:
    """Six jobs of 1..6 calls under module/operation scopes, plus one call in the parent."""
    with meter.track("pipeline", module="extract", operation="label"):
        _ask()
        with meter.track("batch"):
            if pool is None:
                for n in range(1, 7):
                    llm_calls(n)
            else:
                assert list(pool.map(llm_calls, range(1, 7))) == list(range(1, 7))


def test_pool_report_equals_single_process_report() -> None:
    """The same LiteLLM work in 4 workers or in one process gives the same tree and breakdowns."""
    alone, pooled = tm.Meter(), tm.Meter()
    _work(alone, None)
    with ProcessPoolExecutor(4, mp_context=FORK) as pool:
        _work(pooled, pool)
    a, b = alone.report(), pooled.report()
    assert a.total.calls == 22
    assert a.root.to_dict() == b.root.to_dict()
    assert a.by_model() == b.by_model()
    assert a.by_module() == b.by_module() == {"extract": a.total}
    assert a.by_operation() == b.by_operation()
    assert b.node("pipeline", "batch", "llm").entries == 6


def test_budget_travels_and_refuses_in_the_worker() -> None:
    """A budget on the path is enforced in the worker against the tallies at submission."""
    with tm.track("capped", max_calls=3), ProcessPoolExecutor(1, mp_context=FORK) as pool:
        _ask()
        with pytest.raises(tm.BudgetExceeded) as info:
            pool.submit(llm_until_refused).result()
        # The worker's two calls are in the parent's budget too: the next call is refused.
        with pytest.raises(tm.BudgetExceeded):
            _ask()
    assert (info.value.path, info.value.kind, info.value.limit, info.value.spent) == (
        ("capped",),
        "max_calls",
        3,
        3,
    )
    assert tm.report().node("capped").usage.calls == 3


def test_jobs_in_flight_each_get_the_headroom_at_submission() -> None:
    """The documented bound: jobs submitted together each spend up to the headroom at submission."""
    with tm.track("capped", max_calls=3), ProcessPoolExecutor(2, mp_context=FORK) as pool:
        _ask()
        with pytest.raises(tm.BudgetExceeded):
            list(pool.map(llm_until_refused, [0, 1]))  # one map: both jobs see 1 call spent
    assert tm.report().node("capped").usage.calls == 1 + 2 + 2


def test_budget_set_inside_a_job_applies_in_the_job() -> None:
    """A budget a job sets on its own scope stops it there; the parent's node gets no budget."""
    with tm.track("outer"), ProcessPoolExecutor(1, mp_context=FORK) as pool:
        with pytest.raises(tm.BudgetExceeded) as info:
            pool.submit(capped_inside).result()
        _ask()
    assert info.value.path == ("outer", "inner")
    node = tm.report().node("outer")
    assert (node.usage.calls, node.child("inner").usage.calls) == (3, 2)


def test_budget_travels_into_scopes_the_job_opens() -> None:
    """A budget on the submitting path also holds in scopes the job opens below it."""
    with (
        tm.track("capped", max_calls=2),
        ProcessPoolExecutor(1, mp_context=FORK) as pool,
        pytest.raises(tm.BudgetExceeded) as info,
    ):
        pool.submit(nested_until_refused).result()
    assert (info.value.path, info.value.spent) == (("capped",), 2)
    node = tm.report().node("capped")
    assert (node.usage.calls, node.child("nested").usage.calls) == (2, 2)
