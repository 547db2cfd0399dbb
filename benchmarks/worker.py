"""A worker process: times cases against the tokenmeter found first on ``sys.path``.

Started by the harness with ``PYTHONPATH`` set to one version's source. It reads
one JSON command per line on stdin and answers one JSON line on its own stdout
(what the cases print goes to stderr). Not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import contextvars
import functools
import gc
import glob
import importlib
import json
import os
import sys
import traceback
import tracemalloc
from importlib import metadata
from time import perf_counter_ns, thread_time_ns
from typing import Any

import harness
from harness import HERE, Case, Measured, Probe, Runner, Unavailable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def discover(names: list[str] | None) -> list[Any]:
    """The case modules, ``benchmarks/cases_*.py``, in ``ORDER``, then by name."""
    found = sorted(
        os.path.splitext(os.path.basename(p))[0]
        for p in glob.glob(os.path.join(HERE, "cases_*.py"))
    )
    if names is not None:
        found = [n for n in found if n in names]
    mods = [importlib.import_module(n) for n in found]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _timed(runner: Runner, loops: int, ops: int) -> tuple[int, int, int]:
    was = gc.isenabled()
    gc.disable()
    try:
        c0 = thread_time_ns()
        t0 = perf_counter_ns()
        own = runner(loops)
        t1 = perf_counter_ns()
        c1 = thread_time_ns()
    finally:
        if was:
            gc.enable()
    if isinstance(own, Measured):
        return own.wall_ns, own.cpu_ns, loops * ops
    return t1 - t0, c1 - c0, loops * ops


class Worker:
    def __init__(self, src: str, modules: list[str] | None) -> None:
        self.src = src
        # litellm first, as a program would; tokenmeter's import hook instruments it.
        import litellm  # noqa: F401

        import tokenmeter

        self.tm = tokenmeter
        self.modules = discover(modules)
        self.cases: dict[str, tuple[Case, str]] = {}
        self.probes: dict[str, Probe] = {}
        for m in self.modules:
            for c in m.CASES:
                if c.key in self.cases:
                    raise ValueError(f"case key {c.key!r} defined twice")
                self.cases[c.key] = (c, m.__name__)
            for p in getattr(m, "PROBES", ()):
                self.probes[p.key] = p
        self.runners: dict[str, Runner] = {}
        self.contexts: dict[str, contextvars.Context] = {}
        # Everything imported so far lives as long as the process: out of the collector's
        # way, so that the collections between rounds and around tracemalloc are quick.
        gc.collect()
        gc.freeze()

    def hello(self) -> dict[str, Any]:
        tm_file = self.tm.__file__ or ""
        if not os.path.abspath(tm_file).startswith(os.path.abspath(self.src) + os.sep):
            raise RuntimeError(f"tokenmeter imported from {tm_file}, not from {self.src}")
        return {
            "tokenmeter_file": tm_file,
            "packages": {
                d: _version(d)
                for d in ("litellm", "attrs", "opentelemetry-sdk", "opentelemetry-api", "pydantic")
            },
            "modules": [
                {
                    "name": m.__name__,
                    "title": getattr(m, "TITLE", m.__name__),
                    "order": getattr(m, "ORDER", 100),
                }
                for m in self.modules
            ],
            "cases": [
                {
                    "key": c.key,
                    "label": c.label,
                    "ops": c.ops,
                    "hot": c.hot,
                    "rounds": c.rounds,
                    "module": mod,
                }
                for c, mod in self.cases.values()
            ],
            "probes": [{"key": p.key, "label": p.label} for p in self.probes.values()],
        }

    def setup(self, keys: list[str]) -> dict[str, dict[str, str | None]]:
        out: dict[str, dict[str, str | None]] = {}
        for k in keys:
            case = self.cases.get(k)
            if case is None:
                out[k] = {"status": "unavailable", "detail": "no such case in this version"}
                continue
            try:
                # Each case runs in a Context of its own, empty at the start: the cost of a
                # ContextVar set depends on what else the context holds.
                ctx = contextvars.Context()
                self.contexts[k] = ctx
                self.runners[k] = ctx.run(case[0].setup)
                self.time(k, 1)  # a first run, untimed: it must not fail
                out[k] = {"status": "ok"}
            except Unavailable as e:
                out[k] = {"status": "unavailable", "detail": str(e)}
            except Exception:
                out[k] = {"status": "error", "detail": traceback.format_exc()}
            self.tm.reset()
        return out

    def calibrate(self, key: str, quick: bool, target_ns: int) -> int:
        """Loops per round so that one round takes about ``target_ns`` of CPU time."""
        if quick:
            return 2
        loops = 1
        while True:  # also the warm-up: the last run is at about a tenth of a round
            _, cpu, _ = self.time(key, loops)
            if cpu >= target_ns / 10 or loops >= 10_000_000:
                return max(1, round(loops * target_ns / max(cpu, 1)))
            loops *= 10

    def time(self, key: str, loops: int) -> tuple[int, int, int]:
        return self.contexts[key].run(_timed, self.runners[key], loops, self.cases[key][0].ops)

    def alloc(self, key: str, loops: int) -> dict[str, Any]:
        """Bytes per operation under tracemalloc: the transient peak and what is retained.

        ``peak_bytes_per_op``: the peak of traced memory during one operation, above
        the peak of a run of zero operations (the runner's own overhead); what one
        operation holds at once. ``retained_bytes_per_op``: traced memory still held
        after ``loops`` operations and a garbage collection, per operation.
        """
        runner = functools.partial(self.contexts[key].run, self.runners[key])
        ops = self.cases[key][0].ops
        runner(1)
        gc.collect()
        tracemalloc.start()
        try:
            peaks = []
            for n in (0, 1):
                base = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                runner(n)
                peaks.append(tracemalloc.get_traced_memory()[1] - base)
            gc.collect()
            base = tracemalloc.get_traced_memory()[0]
            runner(loops)
            gc.collect()
            retained = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        return {
            "peak_bytes_per_op": max(0, peaks[1] - peaks[0]) / ops,
            "retained_bytes_per_op": retained / (loops * ops),
            "loops": loops,
        }

    def probe(self, key: str, quick: bool) -> dict[str, Any]:
        return contextvars.Context().run(self.probes[key].run, quick)

    def reset(self) -> None:
        self.tm.reset()
        gc.collect()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", required=True)
    parser.add_argument("--modules")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    harness.QUICK = args.quick
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # prints go to stderr
    sys.stdout = sys.stderr
    worker: Worker | None = None
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.pop("op")
        try:
            if op == "bye":
                out.write(json.dumps({"result": None}) + "\n")
                return 0
            if op == "hello":
                worker = Worker(args.src, args.modules.split(",") if args.modules else None)
                result: Any = worker.hello()
            else:
                assert worker is not None
                result = getattr(worker, op)(**cmd)
            reply = {"result": result}
        except Exception:
            reply = {"error": traceback.format_exc()}
        out.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
