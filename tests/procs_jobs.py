"""Jobs the process-pool tests run in worker processes (importable by spawned workers).

Kept apart from the test modules so a spawned worker imports only this and tokenmeter.
Records name their provider and cost, so that a worker never imports LiteLLM (seconds
per process) to derive them; the jobs that call LiteLLM import it.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import tokenmeter as tm


def usage_of(i: int) -> tuple[int, int, float]:
    """(input tokens, output tokens, cost) of job ``i``'s call inside its ``step`` scope."""
    return 10 + i, 1 + i % 7, 0.001 * (1 + i % 3)


def job(i: int) -> tuple[tuple[str, ...], int]:
    """One call on the job's scope and one in a ``step`` scope; returns (path, pid)."""
    tm.record(
        provider="openai", model="gpt-4o-mini", input_tokens=2, output_tokens=1, cost_usd=0.0005
    )
    inp, out, cost = usage_of(i)
    with tm.track("step"):
        tm.record(
            provider="openai", model="gpt-4o", input_tokens=inp, output_tokens=out, cost_usd=cost
        )
    return tm.current().path, os.getpid()


def job_star(i: int, extra: int) -> tuple[tuple[str, ...], int]:
    """`job` for starmap: ``extra`` is added to the index."""
    return job(i + extra)


def fails(i: int) -> None:
    """Records one call, then raises ValueError naming ``i``."""
    tm.record(
        provider="openai", model="gpt-4o-mini", input_tokens=i, output_tokens=1, cost_usd=0.001
    )
    raise ValueError(f"job {i} failed")


def fails_on_three(i: int) -> int:
    """Records one call; raises on ``i == 3``."""
    tm.record(
        provider="openai", model="gpt-4o-mini", input_tokens=i, output_tokens=1, cost_usd=0.001
    )
    if i == 3:
        raise ValueError("three")
    return i


def raises_budget() -> None:
    """Raises a BudgetExceeded (an exception that pickles itself its own way) after one call."""
    tm.record(
        provider="openai", model="gpt-4o-mini", input_tokens=5, output_tokens=1, cost_usd=0.001
    )
    raise tm.BudgetExceeded(("x",), "max_calls", 1, 1)


def inside_usage() -> tuple[tuple[str, ...], int, list[tuple[str, ...]], int]:
    """What a job sees of its meter when it starts: (path, calls, every node's path, pid)."""
    scope = tm.current()
    meter = scope.meter
    nodes = [s.path for s in meter.root.walk()]
    seen = (scope.path, meter.report().total.calls, nodes, os.getpid())
    tm.record(
        provider="openai", model="gpt-4o-mini", input_tokens=1, output_tokens=1, cost_usd=0.001
    )
    return seen


def path_and_attributes() -> tuple[tuple[str, ...], dict[str, Any]]:
    """The job's scope path and the attributes a record made there carries."""
    rec = tm.record(
        provider="openai", model="gpt-4o-mini", input_tokens=1, output_tokens=1, cost_usd=0.001
    )
    return tm.current().path, dict(rec.attributes)


def dies_after_two_calls(i: int) -> None:
    """Records two calls, then the worker process is killed (SIGKILL) mid-job."""
    tm.record(
        provider="openai", model="gpt-4o-mini", input_tokens=100, output_tokens=1, cost_usd=0.01
    )
    tm.record(
        provider="openai", model="gpt-4o-mini", input_tokens=100, output_tokens=1, cost_usd=0.01
    )
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)


def llm_calls(n: int) -> int:
    """``n`` LiteLLM calls (mock responses) in a ``llm`` scope; returns the calls made."""
    import litellm

    with tm.track("llm"):
        for _ in range(n):
            litellm.completion(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                mock_response="hello there",
            )
    return n


def llm_until_refused(_item: object = None) -> int:
    """LiteLLM calls until a budget refuses one (BudgetExceeded propagates)."""
    import litellm

    for _ in range(100):
        litellm.completion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            mock_response="hello there",
        )
    return 100


def unpicklable_metadata() -> int:
    """One record whose metadata cannot be pickled, one plain record."""
    import threading

    lock = {"lock": threading.Lock()}
    tm.record(provider="openai", model="gpt-4o-mini", input_tokens=4, output_tokens=1,
              cost_usd=0.001, metadata=lock)  # fmt: skip
    tm.record(provider="openai", model="gpt-4o-mini", input_tokens=6, output_tokens=1,
              cost_usd=0.001)  # fmt: skip
    return 2


def deep(depth: int) -> int:
    """One record at the bottom of ``depth`` nested scopes."""
    import contextlib

    with contextlib.ExitStack() as stack:
        for i in range(depth):
            stack.enter_context(tm.track(f"d{i}"))
        tm.record(
            provider="openai", model="gpt-4o-mini", input_tokens=3, output_tokens=1, cost_usd=0.001
        )
    return depth


def capped_inside() -> None:
    """Five LiteLLM calls in an ``inner`` scope capped at two (BudgetExceeded propagates)."""
    with tm.track("inner", max_calls=2):
        llm_until_refused()


def nested_until_refused() -> None:
    """LiteLLM calls in a ``nested`` scope until a budget refuses one."""
    with tm.track("nested"):
        llm_until_refused()
