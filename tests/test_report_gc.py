"""report() pauses Python's cyclic garbage collector while it builds, and always restores it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# Each case runs in a fresh interpreter: the pause applies only when the reporting thread is
# the only one, and a test process may have threads of its own (LiteLLM's, exporters').
SETUP = """
import gc, os, signal, threading
import tokenmeter as tm
from tokenmeter import _report_snap

meter = tm.Meter()
for i in range(2000):
    with meter.track(f"job{i % 40}"), meter.track(f"step{i}"):
        meter.record(model="m", input_tokens=3, output_tokens=2, cost_usd=0.25)
real_build = _report_snap.build_locked
seen = []

def watching(*args):
    before = [s["collections"] for s in gc.get_stats()]
    try:
        return real_build(*args)
    finally:
        after = [s["collections"] for s in gc.get_stats()]
        seen.append((gc.isenabled(), [b - a for a, b in zip(before, after)]))

_report_snap.build_locked = watching
"""


def _run(body: str) -> list[str]:
    code = SETUP + textwrap.dedent(body)
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_no_collection_while_a_report_is_built_and_the_collector_is_on_after() -> None:
    """GC on, one thread: off during the build (0 collections of 2,041 scopes), on after."""
    out = _run(
        """
        gc.collect()
        rep = meter.report()
        print(rep.total.calls, rep.total.cost_usd, len(list(rep.walk())))
        print(seen, gc.isenabled())
        """
    )
    assert out == ["2000 500.0 2041", "[(False, [0, 0, 0])] True"]


def test_a_collector_the_program_turned_off_stays_off() -> None:
    """GC disabled by the program: still off during the report and after it."""
    out = _run(
        """
        gc.disable()
        rep = meter.report()
        print(rep.total.calls, seen, gc.isenabled())
        """
    )
    assert out == ["2000 [(False, [0, 0, 0])] False"]


def test_the_collector_is_on_again_after_an_internal_error() -> None:
    """An error inside the build: the report says it is unavailable; the collector is on."""
    out = _run(
        """
        from tokenmeter import _errors
        _errors.RAISE_INTERNAL_ERRORS = False

        def broken(*args):
            seen.append(gc.isenabled())
            raise RuntimeError("build broke")

        _report_snap.build_locked = broken
        rep = meter.report()
        print(rep.error is not None, seen, gc.isenabled())
        """
    )
    assert out == ["True [False] True"]


def test_the_collector_is_on_again_after_ctrl_c_during_the_build() -> None:
    """A real SIGINT while the report is built: KeyboardInterrupt goes out; the collector is on."""
    out = _run(
        """
        # Python's own handler, also where this process started with SIGINT ignored (a
        # background job of a non-interactive shell), where Python installs none.
        signal.signal(signal.SIGINT, signal.default_int_handler)

        def interrupted(*args):
            seen.append(gc.isenabled())
            os.kill(os.getpid(), signal.SIGINT)  # its handler raises at the next check
            for _ in range(100):
                real_build(*args)
            print("not interrupted")

        _report_snap.build_locked = interrupted
        try:
            meter.report()
        except KeyboardInterrupt:
            print("interrupted", seen, gc.isenabled())
        _report_snap.build_locked = real_build
        print(meter.report().total.calls, gc.isenabled())  # the meter's lock was let go
        """
    )
    assert out == ["interrupted [False] True", "2000 True"]


def test_with_another_thread_running_the_collector_is_left_alone() -> None:
    """A second thread alive: the collector stays on during the report (that thread may
    turn it off meanwhile, and must find it off)."""
    out = _run(
        """
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        rep = meter.report()
        stop.set()
        t.join()
        print(rep.total.calls, [on for on, _ in seen], gc.isenabled())
        """
    )
    assert out == ["2000 [True] True"]
