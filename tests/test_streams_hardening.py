"""Streams, hardened: abandoned streams never hang the host, and every stream lands exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# -- 1. An abandoned stream collected while its thread holds the meter's lock -----------

_DEADLOCK_SCRIPT = textwrap.dedent(
    """
    import gc, time, weakref
    import litellm
    import tokenmeter as tm

    gc.disable()  # only the collections below free the stream
    meter = tm.Meter(keep_records=True)
    with meter.track("s"):
        stream = litellm.completion(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
            mock_response="a b c d e f g h", stream=True,
        )
        next(stream)
    stream.cycle = stream  # a reference cycle: only the cyclic GC frees it
    alive = weakref.ref(stream)
    del stream
    with meter._lock:  # as report(), enter or settling would hold it
        for _ in range(1000):
            gc.collect()  # runs the stream's finalizer here, on the lock's holder
            if alive() is None:
                break
            time.sleep(0.01)
    assert alive() is None
    u = meter.report().node("s").usage
    print(u.calls, u.input_tokens, u.output_tokens, u.estimated_calls, u.failed_calls)
    [rec] = meter.records()
    print(sorted(rec.metadata.items()))
    """
)


def test_stream_collected_under_the_meter_lock_does_not_hang() -> None:
    """A stream freed by gc.collect() while its thread holds the meter's lock: no hang, 1 call."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    try:
        out = subprocess.run(
            [sys.executable, "-c", _DEADLOCK_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError("the host hung: the stream's finalizer waited on its own lock") from e
    assert out.returncode == 0, out.stderr
    # Estimated as before: LiteLLM counts the prompt (8) and the one chunk read ("a b", 2).
    assert out.stdout.splitlines() == [
        "1 8 2 1 0",
        "[('abandoned', True), ('stream', True)]",
    ]
