"""The timing harness: what a case is, how it is timed, and how versions are compared.

A *case* is one timed operation. Case modules are ``benchmarks/cases_*.py``; each defines

- ``TITLE``: the heading of its table in docs/performance.md;
- ``ORDER``: an int, tables are rendered in increasing order (then by module name);
- ``CASES``: a list of `Case`;
- optionally ``PROBES``: a list of `Probe` (measurements that are not a timed loop).

``Case.setup()`` runs once, untimed, in a worker process, and returns the runner.
``runner(loops)`` performs ``loops * case.ops`` operations; the harness times the
whole call with the garbage collector off, on two clocks: wall time
(``perf_counter_ns``) and the calling thread's CPU time (``thread_time_ns``, which
does not count the time the thread waits for a core on a busy machine). A runner
that must time itself (threads) returns a `Measured`. A setup that needs something
the code under test does not have (an older commit) raises `Unavailable`; the row
then shows "n/a" for that version. Setup should assert that the operation does
what it claims (a call recorded), so that a case cannot time a no-op.

Rounds are interleaved: every round times every case once in every version before
the next round starts, so all rows and versions see the same machine load; the
tables give the 10th percentile over rounds (`low`), with the median beside it.
Each version of tokenmeter (the working tree, a baseline commit) runs in its own
worker process (``benchmarks/worker.py``) that imports that version's source; the
same case code drives both. A full run starts fresh workers every few rounds
(``Config.restart_every``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: The floor every row is divided by, and the OpenTelemetry anchor (keys of cases).
FLOOR_KEY = "floor_contextvar"
OTEL_KEY = "otel_sdk"

SCHEMA = 1

#: True in a worker of a ``--quick`` run: setups may build smaller inputs.
QUICK = False


def quick() -> bool:
    """Whether this is a ``--quick`` run (timings meaningless, only that cases work)."""
    return QUICK


class Unavailable(Exception):
    """Raised by a setup when the code under test lacks what the case measures."""


@dataclass(frozen=True)
class Measured:
    """A runner's own timing, in nanoseconds for all its operations."""

    wall_ns: int
    cpu_ns: int


Runner = Callable[[int], "Measured | None"]


@dataclass(frozen=True)
class Case:
    """One timed operation (see the module docstring for the contract)."""

    key: str  # unique and stable: results are keyed by it
    label: str  # markdown, shown in the table
    setup: Callable[[], Runner]
    ops: int = 1  # operations per loop
    hot: bool = False  # one of the hot-path rows timed for every recorded change
    rounds: int | None = None  # take part in at most this many rounds (slow cases)


@dataclass(frozen=True)
class Probe:
    """A measurement that is not a timed loop (import time, memory, whole calls).

    ``run(quick)`` returns a JSON-able dict; it runs in each version's worker.
    """

    key: str
    label: str
    run: Callable[[bool], dict[str, Any]]


@dataclass
class Config:
    quick: bool
    rounds: int
    round_ns: int  # target CPU time of one round of one case in one version
    alloc_loops: int
    #: Start fresh worker processes every this many rounds (None: one process each).
    #: The same code runs up to half again as slow in one process as in another on a
    #: shared machine, for the whole life of the process; fresh processes spread that
    #: over the rounds, where the low quantile (`low`) sets the slow ones aside.
    restart_every: int | None = None


#: The full run starts fresh workers every round: with one process per five rounds, rows of
#: identical code (the anchors, LiteLLM's bare call) came out 20-60 % apart between
#: versions in whole runs; with a process per round and the 10th percentile (`low`),
#: within 2-5 %.
FULL_RUN = Config(quick=False, rounds=25, round_ns=15_000_000, alloc_loops=2_000, restart_every=1)
QUICK_RUN = Config(quick=True, rounds=1, round_ns=0, alloc_loops=2)
#: Per-change comparisons time only the hot rows, with fewer rounds.
CHANGE_RUN = Config(quick=False, rounds=15, round_ns=10_000_000, alloc_loops=2_000, restart_every=5)


# -- versions of the source -------------------------------------------------------------


@contextlib.contextmanager
def source_tree(rev: str | None) -> Iterator[tuple[str, str]]:
    """A directory holding tokenmeter at ``rev`` (None: the working tree), and its label."""
    if rev is None:
        yield ROOT, f"working tree ({commit_of(None)})"
        return
    sha = git("rev-parse", "--short", f"{rev}^{{commit}}")
    tmp = tempfile.mkdtemp(prefix=f"tokenmeter-{sha}-")
    try:
        archive = subprocess.run(
            ["git", "-C", ROOT, "archive", "--format=tar", sha, "tokenmeter"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        yield tmp, sha
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", ROOT, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def commit_of(rev: str | None) -> str | None:
    """The short commit of ``rev``, or of HEAD with "+dirty" if the tree has changes."""
    try:
        if rev is not None:
            return git("rev-parse", "--short", f"{rev}^{{commit}}")
        sha = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "tokenmeter")
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


# -- talking to a worker ----------------------------------------------------------------


class Worker:
    """A worker process timing cases against one version of tokenmeter."""

    def __init__(self, name: str, src: str, modules: list[str] | None, quick: bool) -> None:
        self.name = name
        self.src = src
        env = dict(os.environ)
        env["PYTHONPATH"] = src + os.pathsep + HERE
        env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        cmd = [sys.executable, os.path.join(HERE, "worker.py"), "--src", src]
        if modules is not None:
            cmd += ["--modules", ",".join(modules)]
        if quick:
            cmd.append("--quick")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1
        )
        self.info: dict[str, Any] = self.call("hello")

    def call(self, op: str, **kw: Any) -> Any:
        stdin: IO[str] | None = self.proc.stdin
        stdout: IO[str] | None = self.proc.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(json.dumps({"op": op, **kw}) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} died (exit code {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"worker {self.name}, {op}: {reply['error']}")
        return reply["result"]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("bye")
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=30)
        if self.proc.poll() is None:
            self.proc.kill()


# -- statistics -------------------------------------------------------------------------


def low(samples: list[float]) -> float:
    """The figure a row is judged by: the 10th percentile of its per-round samples.

    On the machine of docs/performance.md a process runs the same code in one of two speeds,
    about 1.7x apart, for its whole life (the floor: 0.107-0.12 us or 0.15-0.21 us),
    and how many of a version's processes land in the slow one is chance (3 of 25
    in one version, 16 of 25 in the other, in one run). A median of 25 rounds then
    lands in either speed, and rows of identical code came out up to 51 % and 62 %
    apart between versions in two runs; at the 10th percentile (the fast speed), within
    2 % and 5 %.
    """
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=10, method="inclusive")[0]


def summary(samples: list[float]) -> dict[str, float] | None:
    if not samples:
        return None
    med = statistics.median(samples)
    if len(samples) > 1:
        q = statistics.quantiles(samples, n=4, method="inclusive")
        q1, q3 = q[0], q[2]
    else:
        q1 = q3 = med
    return {"q10": low(samples), "median": med, "q1": q1, "q3": q3, "n": len(samples)}


@dataclass
class Series:
    """One case in one version: per-round samples, microseconds per operation."""

    cpu_us: list[float] = field(default_factory=list)
    wall_us: list[float] = field(default_factory=list)
    status: str = "ok"  # ok | unavailable | error
    detail: str | None = None
    alloc: dict[str, Any] | None = None


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not Unix
        return None


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    os_name = platform.platform()
    with contextlib.suppress(OSError), open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip().strip(chr(34))} ({platform.platform()})"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "os": os_name,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": " ".join(platform.python_build()),
        "executable": sys.executable,
    }


# -- the interleaved run ----------------------------------------------------------------


def run_versions(
    versions: list[tuple[str, str | None]],
    cfg: Config,
    log: Callable[[str], None],
    *,
    hot_only: bool = False,
    probes: bool = True,
    modules: list[str] | None = None,
) -> dict[str, Any]:
    """Time every case in every version, rounds interleaved; return the results dict.

    ``versions`` is a list of (name, rev) with rev None for the working tree; the
    first version calibrates the loop counts, which all versions then share.
    """
    started = time.time()
    load: list[list[float] | None] = [loadavg()]
    with contextlib.ExitStack() as stack:
        workers: list[Worker] = []
        labels: dict[str, str] = {}
        for name, rev in versions:
            src, label = stack.enter_context(source_tree(rev))
            log(f"starting worker {name}: {label} ...")
            w = Worker(name, src, modules, cfg.quick)
            stack.callback(w.close)
            workers.append(w)
            labels[name] = label
        first = workers[0]
        catalog: list[dict[str, Any]] = first.info["cases"]
        if hot_only:
            catalog = [c for c in catalog if c["hot"]]
        keys = [c["key"] for c in catalog]
        series: dict[str, dict[str, Series]] = {
            w.name: {k: Series() for k in keys} for w in workers
        }
        loops: dict[str, int] = {}
        case_rounds = {c["key"]: c["rounds"] for c in catalog}
        case_ops = {c["key"]: c["ops"] for c in catalog}
        for w in workers:
            for k, st in w.call("setup", keys=keys).items():
                s = series[w.name][k]
                s.status, s.detail = st["status"], st.get("detail")
        for k in keys:
            if series[first.name][k].status != "ok":
                continue
            loops[k] = first.call("calibrate", key=k, quick=cfg.quick, target_ns=cfg.round_ns)
        log(f"timing {len(loops)} cases x {len(workers)} version(s), {cfg.rounds} rounds ...")
        for r in range(cfg.rounds):
            if cfg.restart_every and r and r % cfg.restart_every == 0:
                for i, w in enumerate(workers):
                    w.close()
                    workers[i] = Worker(w.name, w.src, modules, cfg.quick)
                    stack.callback(workers[i].close)
                    workers[i].call("setup", keys=list(loops))
            order = workers if r % 2 == 0 else workers[::-1]
            for k, n in loops.items():
                limit = case_rounds.get(k)
                if limit is not None and r >= limit:
                    continue
                for w in order:
                    s = series[w.name][k]
                    if s.status != "ok":
                        continue
                    try:
                        wall_ns, cpu_ns, ops = w.call("time", key=k, loops=n)
                    except RuntimeError as e:
                        s.status, s.detail = "error", str(e)
                        continue
                    s.cpu_us.append(cpu_ns / 1000 / ops)
                    s.wall_us.append(wall_ns / 1000 / ops)
            for w in workers:
                w.call("reset")
            if (r + 1) % 5 == 0:
                log(f"  round {r + 1}/{cfg.rounds}, load {loadavg()}")
        load.append(loadavg())
        for k in loops:
            for w in workers:
                s = series[w.name][k]
                if s.status == "ok":
                    try:
                        n = max(1, min(cfg.alloc_loops // case_ops[k], loops[k]))
                        s.alloc = w.call("alloc", key=k, loops=n)
                    except RuntimeError as e:
                        s.status, s.detail = "error", str(e)
        probe_results: dict[str, dict[str, Any]] = {w.name: {} for w in workers}
        if probes:
            for p in first.info["probes"]:
                for w in workers:
                    log(f"probe {p['key']} ({w.name}) ...")
                    try:
                        probe_results[w.name][p["key"]] = w.call(
                            "probe", key=p["key"], quick=cfg.quick
                        )
                    except RuntimeError as e:
                        probe_results[w.name][p["key"]] = {"error": str(e)}
        load.append(loadavg())
        return {
            "schema": SCHEMA,
            "quick": cfg.quick,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
            "seconds": round(time.time() - started, 1),
            "config": {"rounds": cfg.rounds, "round_ns": cfg.round_ns},
            "machine": machine(),
            "loadavg": {"start": load[0], "after_timing": load[1], "end": load[2]},
            "modules": first.info["modules"],
            "cases": catalog,
            "probes": first.info["probes"],
            "versions": [
                {
                    "name": w.name,
                    "rev": rev,
                    "commit": labels[w.name],
                    "packages": w.info["packages"],
                    "tokenmeter_file": w.info["tokenmeter_file"],
                    "results": {
                        k: {
                            "status": s.status,
                            "detail": s.detail,
                            "loops": loops.get(k),
                            "cpu_us": summary(s.cpu_us),
                            "wall_us": summary(s.wall_us),
                            "cpu_samples_us": s.cpu_us,
                            "alloc": s.alloc,
                        }
                        for k, s in series[w.name].items()
                    },
                    "probes": probe_results[w.name],
                }
                for w, (_, rev) in zip(workers, versions, strict=True)
            ],
        }


def memory_per_call(n: int, call_for: Callable[[Any], Callable[[], Any]]) -> dict[str, Any]:
    """Bytes retained per call (tracemalloc, after a collection), records off and on.

    ``call_for(meter)`` gives the call to measure; it is made inside a scope of
    ``meter``, 1,000 times to warm up, then ``n`` times measured, and the scope's
    usage is read after each batch (what waits in the meter's queue is counted).
    Runs in a worker: imports tokenmeter.
    """
    import gc
    import tracemalloc

    import tokenmeter as tm

    out: dict[str, Any] = {"calls": n}
    for keep in (False, True):
        meter = tm.Meter(keep_records=keep, max_records=n + 2_000)
        call = call_for(meter)
        with meter.track("memory") as scope:
            for _ in range(1000):  # warm-up: the scope's tally exists
                call()
            scope.usage  # noqa: B018
            gc.collect()
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                for _ in range(n):
                    call()
                scope.usage  # noqa: B018
                gc.collect()
                grown = tracemalloc.get_traced_memory()[0] - base
            finally:
                tracemalloc.stop()
        calls = meter.report().total.calls
        if calls != n + 1000:
            raise AssertionError(f"expected {n + 1000} calls, the meter has {calls}")
        out["records_on" if keep else "records_off"] = {
            "grown_bytes": grown,
            "bytes_per_call": grown / n,
            "records_kept": len(meter.records()),
        }
    return out
