"""tokenmeter.testing: an isolated meter for users' tests, and a reset of every global switch."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest
from support.responses import acomplete, complete

import tokenmeter as tm
import tokenmeter.testing
from tokenmeter import _errors, _instrument, _procs, _threads


def test_isolated_meter_takes_scopes_records_litellm_threads_and_tasks() -> None:
    """Everything recorded inside the block lands in the isolated meter, none in the default."""

    async def two_tasks() -> None:
        with tm.track("async"):
            await asyncio.gather(acomplete(10, 5), acomplete(20, 5))

    with tokenmeter.testing.isolated_meter() as meter:
        assert tm.current() is meter.root
        with tm.track("agent"):
            complete(100, 50)
            tm.record(model="tm-test-model", input_tokens=7, output_tokens=3, cost_usd=0.5)
            t = threading.Thread(target=complete, args=(1, 1))
            t.start()
            t.join()
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                pool.submit(complete, 2, 2).result()
        asyncio.run(two_tasks())
    rep = meter.report()
    assert rep.node("agent").usage.calls == 4
    assert rep.node("agent").usage.total_tokens == 150 + 10 + 2 + 4
    assert rep.node("async").usage.calls == 2
    assert rep.total.calls == 6
    assert len(meter.records()) == 6
    assert tm.report().total.calls == 0
    assert tm.current().path == ()


def test_isolated_meter_nests_inside_a_scope_and_gives_it_back() -> None:
    """Inside an open scope the block records only in its meter; the scope is current after."""
    with tm.track("outer") as outer:
        with tokenmeter.testing.isolated_meter(keep_records=False) as meter:
            tm.record(model="m", input_tokens=1, output_tokens=2, cost_usd=0.0)
            with tokenmeter.testing.isolated_meter() as inner:
                tm.record(model="m", input_tokens=3, output_tokens=4, cost_usd=0.0)
        assert tm.current() is outer
    assert outer.usage.calls == 0
    assert (meter.report().total.calls, meter.report().total.total_tokens) == (1, 3)
    assert (inner.report().total.calls, inner.report().total.total_tokens) == (1, 7)
    assert meter.records() == []


def test_tm_report_reports_the_meter_of_the_current_scope() -> None:
    """Inside another meter's scope tm.report() is that meter's report; outside, the default's."""
    tm.record(model="m", input_tokens=1, output_tokens=1, cost_usd=0.0)
    with tokenmeter.testing.isolated_meter() as meter:
        tm.record(model="m", input_tokens=2, output_tokens=3, cost_usd=0.0)
        inside = tm.report()
        with tm.track("job"):
            in_job = tm.report()
    other = tm.Meter()
    with other.track("work"):
        tm.record(model="m", input_tokens=4, output_tokens=4, cost_usd=0.0)
        in_other = tm.report()
    assert (inside.total.calls, inside.total.total_tokens) == (1, 5)
    assert (in_job.total.calls, in_job.node("job").usage.calls) == (1, 0)
    assert (in_other.total.calls, in_other.node("work").usage.total_tokens) == (1, 8)
    assert (tm.report().total.calls, tm.report().total.total_tokens) == (1, 2)
    assert meter.report().total.calls == 1


def test_reset_defaults_puts_every_switch_back() -> None:
    """Prices, the default meter, thread propagation, stream usage and instrumentation reset."""
    tm.set_price("tm-test-model", input_per_mtok=1.0, output_per_mtok=1.0)
    tm.record(model="tm-test-model", input_tokens=1_000_000, output_tokens=0)
    tm.propagate_to_threads(False)
    tm.propagate_to_processes(False)
    tm.request_stream_usage(False)
    tm.uninstrument()
    assert tm.report().total.cost_usd == 1.0
    tokenmeter.testing.reset_defaults()
    assert tm.report().total.calls == 0
    assert threading.Thread.start is _threads._thread_start
    assert _threads.propagating_to_threads() is True
    assert _procs.propagating_to_processes() is True
    assert _instrument._stream_usage == [True]
    assert tm.instrumented()
    rec = tm.record(model="tm-test-model", input_tokens=1_000_000, output_tokens=0)
    assert rec.cost_usd is None  # the custom price is gone: unpriced


def test_reset_defaults_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switches turned off in the environment (TOKENMETER_PROPAGATE_THREADS=0, ...) stay off."""
    monkeypatch.setenv("TOKENMETER_PROPAGATE_THREADS", "0")
    monkeypatch.setenv("TOKENMETER_INSTRUMENT_LITELLM", "off")
    monkeypatch.setenv("TOKENMETER_PROPAGATE_PROCESSES", "no")
    tokenmeter.testing.reset_defaults()
    assert threading.Thread.start is _threads._orig_thread_start
    assert _procs.propagating_to_processes() is False
    assert not tm.instrumented()
    monkeypatch.undo()
    tokenmeter.testing.reset_defaults()
    assert threading.Thread.start is _threads._thread_start
    assert tm.instrumented()


def test_raise_internal_errors_switches_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """raise_internal_errors(False) makes internal errors logged again; True raises them."""
    monkeypatch.setattr(_errors, "RAISE_INTERNAL_ERRORS", True)
    tokenmeter.testing.raise_internal_errors(False)
    assert _errors.RAISE_INTERNAL_ERRORS is False
    tokenmeter.testing.raise_internal_errors()
    assert _errors.RAISE_INTERNAL_ERRORS is True
