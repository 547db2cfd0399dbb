"""The anchors every row is compared with: the floor, OpenTelemetry, and the import."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import threading
from contextvars import ContextVar
from itertools import repeat
from time import perf_counter_ns
from typing import Any

from harness import Case, Probe, Runner

TITLE = "The floor and the anchors"
ORDER = 0


def empty_loop() -> Runner:
    def run(loops: int) -> None:
        for _ in repeat(None, loops):
            pass

    return run


def contextvar_set_reset() -> Runner:
    var: ContextVar[object] = ContextVar("bench", default=None)

    def run(loops: int) -> None:
        for _ in repeat(None, loops):
            token = var.set(1)
            var.reset(token)

    return run


class _Nop:
    __slots__ = ()

    def __enter__(self) -> _Nop:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def trivial_with() -> Runner:
    def run(loops: int) -> None:
        for _ in repeat(None, loops):
            with _Nop():
                pass

    return run


def lock_with() -> Runner:
    lock = threading.Lock()

    def run(loops: int) -> None:
        for _ in repeat(None, loops):
            with lock:
                pass

    return run


def otel_sdk_span() -> Runner:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("tokenmeter-bench")  # no span processor, no exporter

    def run(loops: int) -> None:
        for _ in repeat(None, loops):
            with tracer.start_as_current_span("x"):
                pass

    return run


def otel_noop_span() -> Runner:
    from opentelemetry import trace

    tracer = trace.NoOpTracer()

    def run(loops: int) -> None:
        for _ in repeat(None, loops):
            with tracer.start_as_current_span("x"):
                pass

    return run


CASES = [
    Case("loop", "(empty loop iteration: measurement overhead)", empty_loop),
    Case("floor_contextvar", "**floor**: ContextVar set + reset", contextvar_set_reset, hot=True),
    Case("floor_with", "trivial class-based `with`", trivial_with),
    Case("lock", "`with threading.Lock()`", lock_with),
    Case("otel_sdk", "**OpenTelemetry SDK span**, no exporter", otel_sdk_span, hot=True),
    Case("otel_noop", "OpenTelemetry API no-op span", otel_noop_span),
]


# -- import time ------------------------------------------------------------------------


def import_time(quick: bool) -> dict[str, Any]:
    """``import tokenmeter`` in fresh processes against ``python -c pass``, interleaved.

    The child processes inherit this worker's ``PYTHONPATH``, so they import the
    same version of tokenmeter.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caches, as an installed package has
    runs = 1 if quick else 15
    cmds = {"pass": "pass", "import": "import tokenmeter"}

    def once(code: str) -> float:
        t0 = perf_counter_ns()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return (perf_counter_ns() - t0) / 1e6

    for code in cmds.values():
        once(code)  # warm-up: bytecode caches, file cache
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for k, code in cmds.items():
            times[k].append(once(code))
    probe = (
        "import sys, tokenmeter; "
        "print(__import__('json').dumps({m: m in sys.modules for m in "
        "('litellm', 'attrs', 'inspect', 'json', 'logging')}))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], check=True, env=env, capture_output=True, text=True
        ).stdout
    )
    if loaded["litellm"]:
        raise AssertionError("`import tokenmeter` imported litellm")
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import tokenmeter"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stderr
    total_us = 0
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and m.group(3) == "tokenmeter" and len(m.group(2)) <= 1:
            total_us = int(m.group(1))
    p, i = statistics.median(times["pass"]), statistics.median(times["import"])
    return {
        "runs": runs,
        "pass_ms": p,
        "import_ms": i,
        "extra_ms": i - p,
        "importtime_ms": total_us / 1000,
        "loaded": loaded,
    }


PROBES = [Probe("import", "`import tokenmeter` in a fresh process", import_time)]
