"""A forked child starts with a fresh, unlocked tree: its report holds only its own calls."""

from __future__ import annotations

import json
import multiprocessing
import os
import select
import signal
import sys
import threading
from typing import Any

import pytest

import tokenmeter as tm

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _call(tokens: int) -> None:
    tm.record(model="gpt-4o-mini", input_tokens=tokens, output_tokens=1, cost_usd=0.001)


def _child_summary() -> dict[str, Any]:
    rep = tm.report()
    return {
        "path": list(tm.current().path),
        "calls": rep.total.calls,
        "input_tokens": rep.total.input_tokens,
        "job_calls": rep.node("job").usage.calls,
    }


def _fork_and_read(child: Any, timeout: float = 20.0) -> dict[str, Any]:
    """Fork; the child runs ``child()`` and writes its JSON answer to a pipe, then exits."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read_end)
            os.write(write_end, json.dumps(child()).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        data = b""
        while chunk := os.read(read_end, 65536):
            data += chunk
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(data)  # type: ignore[no-any-return]


def test_a_forked_child_reports_only_its_own_calls() -> None:
    """Parent: 2 calls in "job"; the child forked inside "job" makes 1: its report holds 1."""
    with tm.track("job"):
        _call(100)
        _call(100)

        def child() -> dict[str, Any]:
            _call(7)
            return _child_summary()

        got = _fork_and_read(child)
    assert got == {"path": ["job"], "calls": 1, "input_tokens": 7, "job_calls": 1}
    assert tm.report().node("job").usage.calls == 2


def test_a_child_forked_while_another_thread_holds_the_lock_does_not_hang() -> None:
    """Another thread holds the meter's lock at the fork: the child records and reports."""
    from tokenmeter._meter import DEFAULT_METER

    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with DEFAULT_METER._lock:
            holding.set()
            release.wait(30)

    with tm.track("job"):
        t = threading.Thread(target=hold)
        t.start()
        assert holding.wait(10)
        try:

            def child() -> dict[str, Any]:
                _call(3)
                return _child_summary()

            got = _fork_and_read(child)
        finally:
            release.set()
            t.join(10)
    assert got == {"path": ["job"], "calls": 1, "input_tokens": 3, "job_calls": 1}


def _mp_child(queue: Any) -> None:
    _call(5)
    queue.put(_child_summary())


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method")
def test_multiprocessing_fork_child_reports_only_its_own_calls() -> None:
    """multiprocessing with the fork start method: the child's report holds its 1 call."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    with tm.track("job"):
        _call(100)
        proc = ctx.Process(target=_mp_child, args=(queue,))
        proc.start()
        got = queue.get(timeout=20)
        proc.join(20)
    assert proc.exitcode == 0
    assert got == {"path": ["job"], "calls": 1, "input_tokens": 5, "job_calls": 1}


def test_a_budget_spent_before_the_fork_still_counts_in_the_child() -> None:
    """max_calls=3 with 2 spent before the fork: the child gets 1 call, then is refused."""
    with tm.track("job", max_calls=3):
        _call(1)
        _call(1)

        def child() -> dict[str, Any]:
            from tokenmeter._budgets import before_call
            from tokenmeter._scope import current_frame

            outcomes = []
            for _ in range(2):
                try:
                    before_call(current_frame())
                    outcomes.append("ok")
                except tm.BudgetExceeded:
                    outcomes.append("refused")
            return {"outcomes": outcomes}

        got = _fork_and_read(child)
    assert got == {"outcomes": ["ok", "refused"]}


def test_a_child_forked_while_another_thread_holds_the_carry_lock_can_submit_jobs() -> None:
    """Another thread holds the job-carrying lock at the fork: the child builds a job context."""
    from tokenmeter import _carry

    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with _carry._lock:
            holding.set()
            release.wait(30)

    with tm.track("job"):
        t = threading.Thread(target=hold)
        t.start()
        assert holding.wait(10)
        try:

            def child() -> dict[str, Any]:
                return {"path": list(_carry.context()[1])}

            got = _fork_and_read(child, timeout=5)
        finally:
            release.set()
            t.join(10)
    assert got == {"path": ["job"]}


MODULE_LOCKS = [
    ("tokenmeter._pricing", "_lock"),
    ("tokenmeter._litellm.install", "_lock"),
    ("tokenmeter._calls_log", "_install_lock"),
    ("tokenmeter.otel", "_lock"),
    ("tokenmeter.otel._metrics", "_by_provider_lock"),
]


@pytest.mark.parametrize(("module", "name"), MODULE_LOCKS)
def test_a_module_lock_held_by_another_thread_at_the_fork_is_free_in_the_child(
    module: str, name: str
) -> None:
    """Another thread holds one of tokenmeter's module locks at the fork: the child can take it."""
    import importlib

    lock = getattr(importlib.import_module(module), name)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with lock:
            holding.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    assert holding.wait(10)
    try:

        def child() -> dict[str, Any]:
            mod = importlib.import_module(module)
            got = getattr(mod, name).acquire(timeout=2)
            return {"acquired": got}

        answer = _fork_and_read(child, timeout=10)
    finally:
        release.set()
        t.join(10)
    assert answer == {"acquired": True}


def test_a_child_forked_while_another_thread_exports_a_call_can_export_its_own() -> None:
    """Another thread holds the OpenTelemetry exporter's locks at the fork: the child's call
    is counted and exported (1 call in its report and in its metric sums)."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    import tokenmeter.otel as otel

    reader = InMemoryMetricReader()
    otel.instrument(TracerProvider(), MeterProvider(metric_readers=[reader]))
    try:
        observer = otel._observer[0]
        assert observer.metrics is not None
        locks = [observer._lock, observer.metrics._lock]
        holding = threading.Event()
        release = threading.Event()

        def hold() -> None:
            for lock in locks:
                lock.acquire()
            holding.set()
            release.wait(30)
            for lock in locks:
                lock.release()

        t = threading.Thread(target=hold)
        t.start()
        assert holding.wait(10)
        try:

            def child() -> dict[str, Any]:
                with tm.track("job"):
                    _call(5)
                points = [
                    p.value
                    for rm in reader.get_metrics_data().resource_metrics
                    for sm in rm.scope_metrics
                    for m in sm.metrics
                    if m.name == "tokenmeter.calls"
                    for p in m.data.data_points
                ]
                return {**_child_summary(), "exported": sum(points)}

            got = _fork_and_read(child, timeout=10)
        finally:
            release.set()
            t.join(10)
    finally:
        otel.uninstrument()
    assert got == {"path": [], "calls": 1, "input_tokens": 5, "job_calls": 1, "exported": 1}
