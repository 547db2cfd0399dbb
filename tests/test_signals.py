"""A signal raising into tokenmeter's calls leaves no lock held and later calls counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")

# A timer raises KeyboardInterrupt every 0.3 ms while a call is being made (``armed``):
# hundreds of interrupts land at every point of the calls, as a Ctrl-C may.
ALARMS = """
import signal, time
import tokenmeter as tm
from tokenmeter import _tree

armed = False

def on_alarm(signum, frame):
    global armed
    if armed:
        armed = False  # one interrupt per arming: none lands in the test's own except clause
        raise KeyboardInterrupt

signal.signal(signal.SIGALRM, on_alarm)
"""


def _run(body: str, timeout: float = 30) -> str:
    """Run ``ALARMS`` and ``body`` in a fresh interpreter; its printed answer."""
    env = {**os.environ, "TOKENMETER_RAISE_INTERNAL_ERRORS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ALARMS) + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_keyboard_interrupt_inside_record_never_leaves_the_meter_locked() -> None:
    """KeyboardInterrupts in 1.2 s of record() calls leave the lock free; the next call counts."""
    out = _run(
        """
        meter = tm.Meter()
        CALL = dict(model="m", provider="p", input_tokens=1, output_tokens=1, cost_usd=0.001)
        meter.record(**CALL)
        lock = _tree.tree_lock(meter)
        interrupted = 0
        signal.setitimer(signal.ITIMER_REAL, 0.0003, 0.0003)
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline and not lock._is_owned():
            for _ in range(200):
                try:
                    armed = True
                    meter.record(**CALL)
                    armed = False
                except KeyboardInterrupt:
                    armed = False
                    interrupted += 1
                    if lock._is_owned():
                        break
        signal.setitimer(signal.ITIMER_REAL, 0)
        held = lock._is_owned()
        if held:
            print("held after", interrupted, "interrupts")
        else:
            before = meter.report().total.calls
            meter.record(**CALL)
            print(held, interrupted > 0, meter.report().total.calls - before)
        """
    )
    assert out == "False True 1"


# A handler that itself calls tokenmeter, every ``interval`` seconds, while the program is inside
# tokenmeter's calls (a SIGTERM handler saving the report is the realistic case).
REENTRANT = """
import signal, time
import tokenmeter as tm

meter = tm.Meter()
CALL = dict(model="m", provider="p", input_tokens=2, output_tokens=3, cost_usd=0.001)
handled = recorded = 0
seen = []

def on_alarm(signum, frame):
    global handled, recorded
    handled += 1
    {action}

signal.signal(signal.SIGALRM, on_alarm)
for i in range(300):
    with meter.track(f"s{{i}}"):
        meter.record(**CALL)
made = 300
meter.report()  # the report modules imported before the first alarm
signal.setitimer(signal.ITIMER_REAL, {interval}, {interval})
deadline = time.monotonic() + 1.0
while time.monotonic() < deadline:
    with meter.track("loop"):
        for _ in range(20):
            meter.record(**CALL)
            made += 1
    meter.report()
signal.setitimer(signal.ITIMER_REAL, 0)
total = meter.report().total
print(handled > 50, total.calls - made - recorded, total.input_tokens - 2 * total.calls, bool(seen))
"""


def _run_reentrant(action: str, interval: float) -> str:
    """Run ``REENTRANT`` with ``action`` in the handler; its printed answer."""
    done = subprocess.run(
        [sys.executable, "-c", REENTRANT.format(action=action, interval=interval)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TOKENMETER_RAISE_INTERNAL_ERRORS": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_signal_handler_calling_report_inside_tokenmeter_neither_hangs_nor_loses_a_call() -> None:
    """A handler calling report() every 2 ms inside record()/report(): no hang, no call lost."""
    assert _run_reentrant("seen.append(meter.report().total.calls)", 0.002) == "True 0 0 True"


def test_a_signal_handler_calling_record_inside_tokenmeter_counts_each_call_once() -> None:
    """A handler calling record() every 0.2 ms inside record()/report(): each call counted once."""
    action = "meter.record(**CALL); recorded += 1; seen.append(1)"
    assert _run_reentrant(action, 0.0002) == "True 0 0 True"


def test_a_signal_handler_making_scopes_and_models_during_a_report_keeps_it_adding_up() -> None:
    """A handler making scopes and models every 0.5 ms inside report(): no error, no call lost."""
    action = (
        'with meter.track(f"h{handled % 40}"):\n'
        '        meter.record(**{**CALL, "model": f"m{handled % 7}"})\n'
        "    recorded += 1; seen.append(1)"
    )
    assert _run_reentrant(action, 0.0005) == "True 0 0 True"
