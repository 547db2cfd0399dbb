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
        while time.monotonic() < deadline and not lock.locked():
            for _ in range(200):
                try:
                    armed = True
                    meter.record(**CALL)
                    armed = False
                except KeyboardInterrupt:
                    armed = False
                    interrupted += 1
                    if lock.locked():
                        break
        signal.setitimer(signal.ITIMER_REAL, 0)
        held = lock.locked()
        if held:
            print("held after", interrupted, "interrupts")
        else:
            before = meter.report().total.calls
            meter.record(**CALL)
            print(held, interrupted > 0, meter.report().total.calls - before)
        """
    )
    assert out == "False True 1"
