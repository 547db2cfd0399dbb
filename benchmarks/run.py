"""tokenmeter's overhead in microseconds per call, side by side with its anchors.

Run ``make bench`` (or ``python benchmarks/run.py``). Everything is measured in
one process and one run, on the same machine:

- the floor: a ``ContextVar`` set+reset and a trivial class-based ``with``;
- ``with tm.track("x")`` enter+exit, flat, nested at depth 1, 5 and 20, and over
  1,000 distinct sibling names;
- ``@tm.tracked`` on a sync function and on a coroutine, against the same
  function undecorated;
- ``tm.record(...)`` from one thread and from two threads at once;
- tokenmeter's own work to attribute one LiteLLM call, isolated from LiteLLM,
  and a whole ``litellm.completion(mock_response=...)`` with and without
  tokenmeter attached;
- an OpenTelemetry SDK span and the OpenTelemetry API's no-op span;
- ``import tokenmeter`` in a fresh process against ``python -c pass``;
- memory per call with tracemalloc, per-call records off and on.

Timings are ``timeit``-style: each benchmark runs a calibrated number of loops
per round (garbage collector off during a round, as ``timeit`` does), rounds of
all benchmarks are interleaved so they see the same machine load, and the table
shows the median and the interquartile range over rounds, per operation.

``--quick`` runs every benchmark once with tiny counts, so they cannot rot (it
is part of ``make test``); it asserts nothing about time, but exits non-zero if
a benchmark crashes or a functional check fails. ``--json PATH`` also writes
the results, the raw samples and the machine description as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

perf_counter_ns = time.perf_counter_ns

#: Depths of already-open scopes around the measured ``with tm.track(...)``, and
#: numbers of distinct sibling names it cycles over (pluggy's benchmark.py style).
DEPTHS = (0, 1, 5, 20)
FANOUTS = (1, 1000)

#: Scopes in the tree a report is taken of (report cost is O(scopes)).
REPORT_SIZES = (10, 1000)

#: Targets from issue 5 (medians, CPython 3.11).
TARGET_SCOPE_US = 0.5
TARGET_OTEL_RATIO = 25.0
TARGET_ATTRIBUTION_US = 2.0
TARGET_RECORD_US = 2.0
TARGET_IMPORT_MS = 50.0

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello."}]

#: A timed run: ``run(loops)`` performs ``loops * ops`` operations and returns nanoseconds.
Runner = Callable[[int], int]


@dataclass
class Case:
    """One timed benchmark: ``factory()`` builds the runner once (setup is not timed)."""

    key: str
    label: str
    factory: Callable[[], Runner]
    ops: int = 1  # operations per loop
    samples_us: list[float] = field(default_factory=list)
    loops: int = 0
    runner: Runner | None = None
    error: str | None = None

    def median(self) -> float:
        return statistics.median(self.samples_us)

    def quartiles(self) -> tuple[float, float]:
        if len(self.samples_us) < 2:
            m = self.median()
            return m, m
        q = statistics.quantiles(self.samples_us, n=4, method="inclusive")
        return q[0], q[2]


@dataclass
class Config:
    quick: bool
    rounds: int
    round_ns: int  # target duration of one round of one benchmark
    quick_loops: int
    completion_rounds: int
    completion_calls: int
    import_runs: int
    memory_calls: int


FULL = Config(
    quick=False,
    rounds=31,
    round_ns=20_000_000,
    quick_loops=0,
    completion_rounds=30,
    completion_calls=30,
    import_runs=21,
    memory_calls=1_000_000,
)
QUICK = Config(
    quick=True,
    rounds=1,
    round_ns=0,
    quick_loops=20,
    completion_rounds=1,
    completion_calls=2,
    import_runs=1,
    memory_calls=2_000,
)


# -- the floor --------------------------------------------------------------------------


def empty_loop() -> Runner:
    def run(loops: int) -> int:
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            pass
        return perf_counter_ns() - t0

    return run


def contextvar_set_reset() -> Runner:
    var: ContextVar[object] = ContextVar("bench", default=None)

    def run(loops: int) -> int:
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            token = var.set(1)
            var.reset(token)
        return perf_counter_ns() - t0

    return run


class _Nop:
    __slots__ = ()

    def __enter__(self) -> _Nop:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def trivial_with() -> Runner:
    def run(loops: int) -> int:
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            with _Nop():
                pass
        return perf_counter_ns() - t0

    return run


# -- scopes -----------------------------------------------------------------------------


@contextlib.contextmanager
def _open_scopes(depth: int) -> Iterator[None]:
    """``depth`` nested scopes open around the block (entered outside the timing)."""
    import tokenmeter as tm

    with contextlib.ExitStack() as stack:
        for i in range(depth):
            stack.enter_context(tm.track(f"level{i}"))
        yield


def track_case(depth: int, fanout: int) -> Callable[[], Runner]:
    """``with tm.track(name): pass`` under ``depth`` open scopes, over ``fanout`` names."""

    def factory() -> Runner:
        import tokenmeter as tm

        names = [f"step{i}" for i in range(fanout)]

        def run(loops: int) -> int:
            track = tm.track
            with _open_scopes(depth):
                if fanout == 1:
                    it = repeat(None, loops)
                    t0 = perf_counter_ns()
                    for _ in it:
                        with track("step"):
                            pass
                    return perf_counter_ns() - t0
                it = repeat(names, loops)
                t0 = perf_counter_ns()
                for ns in it:
                    for name in ns:
                        with track(name):
                            pass
                return perf_counter_ns() - t0

        return run

    return factory


def engine_enter_exit() -> Runner:
    """``_scope.enter`` + ``exit_``: the scope engine alone, without the ``Track`` object."""
    from tokenmeter._scope import enter, exit_

    def run(loops: int) -> int:
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            token, _scope = enter(None, "step", None, None, None, None)
            exit_(token)
        return perf_counter_ns() - t0

    return run


def lock_with() -> Runner:
    lock = threading.Lock()

    def run(loops: int) -> int:
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            with lock:
                pass
        return perf_counter_ns() - t0

    return run


def frame_alloc() -> Runner:
    """One ``Frame`` (the immutable value a scope entry makes current)."""
    import tokenmeter as tm
    from tokenmeter._scope import Frame

    root = tm.Meter()._root_frame
    scope, attributes = root.scope, root.attributes

    def run(loops: int) -> int:
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            Frame(scope, None, None, attributes, (), root)
        return perf_counter_ns() - t0

    return run


def track_prebuilt() -> Runner:
    import tokenmeter as tm

    step = tm.track("step")

    def run(loops: int) -> int:
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            with step:
                pass
        return perf_counter_ns() - t0

    return run


def _call_loop(fn: Callable[[], object]) -> Runner:
    def run(loops: int) -> int:
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            fn()
        return perf_counter_ns() - t0

    return run


def _drive_loop(fn: Callable[[], Any], after: Callable[[], Any] | None = None) -> Runner:
    """Call a coroutine function and drive the coroutine to its end (no event loop).

    ``after``, if given, runs once at the end of each round, inside the timing.
    """

    def run(loops: int) -> int:
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            coro = fn()
            try:
                coro.send(None)
            except StopIteration:
                pass
        if after is not None:
            after()
        return perf_counter_ns() - t0

    return run


def _plain() -> None:
    return None


async def _aplain() -> None:
    return None


def sync_plain() -> Runner:
    return _call_loop(_plain)


def sync_tracked() -> Runner:
    import tokenmeter as tm

    return _call_loop(tm.tracked(_plain))


def coro_plain() -> Runner:
    return _drive_loop(_aplain)


def coro_tracked() -> Runner:
    import tokenmeter as tm

    return _drive_loop(tm.tracked(_aplain))


# -- manual records ---------------------------------------------------------------------


def record_one_thread() -> Runner:
    import tokenmeter as tm

    def run(loops: int) -> int:
        record = tm.record
        with tm.track("records"):
            it = repeat(None, loops)
            t0 = perf_counter_ns()
            for _ in it:
                record(model=MODEL, input_tokens=10, output_tokens=20, cost_usd=0.000015)
            return perf_counter_ns() - t0

    return run


def record_two_threads(per_thread: bool) -> Callable[[], Runner]:
    """Two threads record at once: wall time per call overall, or as each thread sees it."""

    def factory() -> Runner:
        import tokenmeter as tm

        def run(loops: int) -> int:
            record = tm.record
            start = threading.Barrier(3)
            own = [0, 0]

            def worker(i: int) -> None:
                with tm.track(f"worker{i}"):
                    it = repeat(None, loops)
                    start.wait()
                    t0 = perf_counter_ns()
                    for _ in it:
                        record(model=MODEL, input_tokens=10, output_tokens=20, cost_usd=0.000015)
                    own[i] = perf_counter_ns() - t0

            with tm.track("records"):
                threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
                for t in threads:
                    t.start()
                start.wait()
                t0 = perf_counter_ns()
                for t in threads:
                    t.join()
                wall = perf_counter_ns() - t0
            return (own[0] + own[1]) // 2 if per_thread else wall

        return run

    return factory


# -- LiteLLM ----------------------------------------------------------------------------


def _litellm_response() -> Any:
    """A real ModelResponse of a mock completion: ``_hidden_params`` as LiteLLM sets them."""
    import litellm

    import tokenmeter as tm

    was = tm.instrumented()
    tm.uninstrument()
    try:
        resp = litellm.completion(model=MODEL, messages=MESSAGES, mock_response="Hello!")
    finally:
        if was:
            tm.instrument()
    hp = resp._hidden_params
    assert hp.get("litellm_model_name"), hp
    assert hp.get("response_cost"), hp
    return resp


def _scope_frame(name: str) -> Any:
    import tokenmeter as tm
    from tokenmeter._scope import CURRENT

    with tm.track(name):
        frame = CURRENT.get()
    assert frame is not None
    return frame


def attribution_record_result() -> Runner:
    """``_litellm.record_result`` on a prebuilt response: the general path, one call at a time.

    What a call costs when it cannot be queued: per-call records kept, a budget on
    the path, custom prices, a cache hit, or a response other than a plain
    ``ModelResponse``.
    """
    import tokenmeter as tm
    from tokenmeter import _litellm

    resp = _litellm_response()
    frame = _scope_frame("attribution")
    state = _litellm.CallState()
    kwargs = {"model": MODEL, "messages": MESSAGES}
    record_result = _litellm.record_result
    before = frame.scope.usage.calls
    record_result(frame, "completion", resp, (), kwargs, time.perf_counter(), state)
    after = frame.scope.usage
    assert after.calls == before + 1, after
    assert after.input_tokens > 0, after
    assert tm.instrumented()

    def run(loops: int) -> int:
        started = time.perf_counter()
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            record_result(frame, "completion", resp, (), kwargs, started, state)
        return perf_counter_ns() - t0

    return run


def _fake_completion_factory() -> tuple[Callable[..., Any], Any]:
    resp = _litellm_response()

    def completion(*args: Any, **kwargs: Any) -> Any:
        return resp

    return completion, resp


def attribution_bare() -> Runner:
    completion, _ = _fake_completion_factory()

    def run(loops: int) -> int:
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            completion(model=MODEL, messages=MESSAGES)
        return perf_counter_ns() - t0

    return run


def attribution_wrapped() -> Runner:
    """``_litellm.wrap_sync`` around a function that returns a prebuilt response."""
    import tokenmeter as tm
    from tokenmeter import _litellm

    completion, _ = _fake_completion_factory()
    wrapped = _litellm.wrap_sync(completion, "completion")
    with tm.track("wrapped") as scope:
        wrapped(model=MODEL, messages=MESSAGES)
    assert scope.usage.calls == 1, scope.usage

    def run(loops: int) -> int:
        with tm.track("wrapped") as scope:
            it = repeat(None, loops)
            t0 = perf_counter_ns()
            for _ in it:
                wrapped(model=MODEL, messages=MESSAGES)
            # Plain responses wait in the meter's queue: count what is left, in the time.
            scope.meter._settle()
            return perf_counter_ns() - t0

    return run


def _fake_acompletion_factory() -> Callable[..., Any]:
    resp = _litellm_response()

    async def acompletion(*args: Any, **kwargs: Any) -> Any:
        return resp

    return acompletion


def attribution_async_bare() -> Runner:
    acompletion = _fake_acompletion_factory()
    return _drive_loop(lambda: acompletion(model=MODEL, messages=MESSAGES))


def attribution_async_wrapped() -> Runner:
    """``_litellm.wrap_async`` around a coroutine function returning a prebuilt response."""
    import tokenmeter as tm
    from tokenmeter import _litellm

    wrapped = _litellm.wrap_async(_fake_acompletion_factory(), "completion")

    def call() -> Any:
        return wrapped(model=MODEL, messages=MESSAGES)

    with tm.track("awrapped") as scope:
        _drive_loop(call)(1)
    assert scope.usage.calls == 1, scope.usage
    # Each round ends by counting what its calls left in the meter's queue, in the time.
    rounds = _drive_loop(call, after=scope.meter._settle)

    def run(loops: int) -> int:
        with tm.track("awrapped"):
            return rounds(loops)

    return run


# -- reports ----------------------------------------------------------------------------


def report_case(scopes: int) -> Callable[[], Runner]:
    """``meter.report()`` of a tree of ``scopes`` scopes with one record each."""

    def factory() -> Runner:
        import tokenmeter as tm

        meter = tm.Meter()
        with meter.track("run"):
            for i in range(scopes - 1):
                with meter.track(f"step{i}"):
                    meter.record(model=MODEL, input_tokens=10, output_tokens=20, cost_usd=1.5e-5)
        assert meter.report().total.calls == scopes - 1

        def run(loops: int) -> int:
            report = meter.report
            it = repeat(None, loops)
            t0 = perf_counter_ns()
            for _ in it:
                report()
            return perf_counter_ns() - t0

        return run

    return factory


# -- OpenTelemetry ----------------------------------------------------------------------


def otel_sdk_span() -> Runner:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("tokenmeter-bench")  # no span processor, no exporter

    def run(loops: int) -> int:
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            with tracer.start_as_current_span("x"):
                pass
        return perf_counter_ns() - t0

    return run


def otel_noop_span() -> Runner:
    from opentelemetry import trace

    tracer = trace.NoOpTracer()

    def run(loops: int) -> int:
        it = repeat(None, loops)
        t0 = perf_counter_ns()
        for _ in it:
            with tracer.start_as_current_span("x"):
                pass
        return perf_counter_ns() - t0

    return run


# -- the cases --------------------------------------------------------------------------


def cases() -> list[Case]:
    out = [
        Case("loop", "(empty loop iteration: measurement overhead)", empty_loop),
        Case("floor_contextvar", "floor: ContextVar set + reset", contextvar_set_reset),
        Case("floor_with", "floor: trivial class-based `with`", trivial_with),
        Case("lock", "building block: `with threading.Lock()`", lock_with),
        Case("frame", "building block: allocate one `Frame`", frame_alloc),
        Case("engine", "scope engine only: `_scope.enter` + `exit_`", engine_enter_exit),
    ]
    for depth in DEPTHS:
        for fanout in FANOUTS:
            if depth and fanout > 1:
                continue
            if fanout > 1:
                label = f"`with tm.track(name)`, {fanout:,} distinct sibling names"
                key = f"track_fanout{fanout}"
            elif depth == 0:
                label = '`with tm.track("x")` enter+exit, flat'
                key = "track_flat"
            else:
                label = f'`with tm.track("x")` enter+exit, nested at depth {depth}'
                key = f"track_depth{depth}"
            out.append(Case(key, label, track_case(depth, fanout), ops=fanout))
    out += [
        Case("track_prebuilt", '`with step:` (`step = tm.track("x")` built once)', track_prebuilt),
        Case("sync_plain", "sync function, undecorated", sync_plain),
        Case("sync_tracked", "sync function, `@tm.tracked`", sync_tracked),
        Case("coro_plain", "coroutine, undecorated (driven by `send(None)`)", coro_plain),
        Case("coro_tracked", "coroutine, `@tm.tracked` (driven by `send(None)`)", coro_tracked),
        Case("record_1t", "`tm.record(...)`, cost given, one thread", record_one_thread),
        Case(
            "record_2t_wall",
            "`tm.record(...)`, two threads at once: wall time / all calls",
            record_two_threads(per_thread=False),
            ops=2,
        ),
        Case(
            "record_2t_each",
            "`tm.record(...)`, two threads at once: each thread's time / its calls",
            record_two_threads(per_thread=True),
        ),
        Case(
            "litellm_record_result",
            "LiteLLM attribution: `record_result` on a ModelResponse",
            attribution_record_result,
        ),
        Case(
            "litellm_bare",
            "trivial `completion()` returning a ModelResponse, bare",
            attribution_bare,
        ),
        Case(
            "litellm_wrapped",
            "LiteLLM attribution: same function wrapped by `wrap_sync`",
            attribution_wrapped,
        ),
        Case(
            "litellm_async_bare",
            "trivial `acompletion()` coroutine, bare (driven by `send(None)`)",
            attribution_async_bare,
        ),
        Case(
            "litellm_async_wrapped",
            "LiteLLM attribution: same coroutine wrapped by `wrap_async`",
            attribution_async_wrapped,
        ),
        *(
            Case(f"report{n}", f"`meter.report()` of a tree of {n:,} scopes", report_case(n))
            for n in REPORT_SIZES
        ),
        Case("otel_sdk", "OpenTelemetry SDK span, no exporter", otel_sdk_span),
        Case("otel_noop", "OpenTelemetry API no-op span", otel_noop_span),
    ]
    return out


# -- running ----------------------------------------------------------------------------


def _timed(runner: Runner, loops: int) -> int:
    was = gc.isenabled()
    gc.disable()
    try:
        return runner(loops)
    finally:
        if was:
            gc.enable()


def calibrate(runner: Runner, target_ns: int) -> int:
    """Loops per round so one round lasts about ``target_ns`` (like ``timeit.autorange``)."""
    loops = 1
    while True:
        ns = _timed(runner, loops)
        if ns >= target_ns / 10 or loops >= 10_000_000:
            return max(1, round(loops * target_ns / max(ns, 1)))
        loops *= 10


def run_cases(all_cases: list[Case], cfg: Config, log: Callable[[str], None]) -> None:
    import tokenmeter as tm

    for c in all_cases:
        try:
            c.runner = c.factory()
            if cfg.quick:
                c.loops = max(1, cfg.quick_loops // c.ops)
                _timed(c.runner, c.loops)  # warm-up
            else:
                _timed(c.runner, max(1, 1000 // c.ops))  # warm-up
                c.loops = calibrate(c.runner, cfg.round_ns // c.ops * c.ops)
        except Exception:
            c.error = traceback.format_exc()
            log(f"  {c.key}: setup FAILED")
    live = [c for c in all_cases if c.error is None]
    for r in range(cfg.rounds):
        for c in live:
            if c.error is not None or c.runner is None:
                continue
            try:
                ns = _timed(c.runner, c.loops)
            except Exception:
                c.error = traceback.format_exc()
                continue
            c.samples_us.append(ns / 1000 / (c.loops * c.ops))
        tm.reset()
        gc.collect()
        if not cfg.quick and (r + 1) % 10 == 0:
            log(f"  round {r + 1}/{cfg.rounds}")


def whole_completion(cfg: Config) -> dict[str, Any]:
    """``litellm.completion(mock_response=...)`` with and without tokenmeter, interleaved."""
    import litellm

    import tokenmeter as tm

    def batch(n: int) -> float:
        t0 = perf_counter_ns()
        for _ in range(n):
            litellm.completion(model=MODEL, messages=MESSAGES, mock_response="Hello!")
        return (perf_counter_ns() - t0) / 1000 / n

    on: list[float] = []
    off: list[float] = []
    n = cfg.completion_calls

    def without() -> None:
        tm.uninstrument()
        try:
            gc.collect()
            off.append(batch(n))
        finally:
            tm.instrument()

    def with_() -> None:
        gc.collect()
        before = scope.usage.calls
        on.append(batch(n))
        recorded = scope.usage.calls - before
        if recorded != n:
            raise AssertionError(f"tokenmeter recorded {recorded} of {n} completions")

    with tm.track("completion") as scope:
        batch(2 if cfg.quick else 10)  # warm-up, instrumented
        for r in range(cfg.completion_rounds):
            # Alternate which goes first: LiteLLM's background logging of one batch
            # may spill into the next.
            for step in (without, with_) if r % 2 == 0 else (with_, without):
                step()
    return {"with_us": on, "without_us": off, "in_flow_us": in_flow(cfg)}


def in_flow(cfg: Config) -> list[float]:
    """tokenmeter's own time inside real calls: the wrapper's time minus LiteLLM's.

    The micro-benchmarks above run hot, in a loop; here each call's attribution runs
    right after LiteLLM's own work, as in a real program. A shim between the wrapper
    and ``litellm.completion`` times LiteLLM's part (the shim adds ~0.1 us).
    """
    import litellm

    import tokenmeter as tm
    from tokenmeter import _litellm

    original = litellm.completion
    while hasattr(original, "__tokenmeter_original__"):
        original = original.__tokenmeter_original__
    inner: list[int] = []

    def shim(*args: Any, **kwargs: Any) -> Any:
        t0 = perf_counter_ns()
        try:
            return original(*args, **kwargs)
        finally:
            inner.append(perf_counter_ns() - t0)

    wrapped = _litellm.wrap_sync(shim, "completion")
    own: list[float] = []
    n = 4 if cfg.quick else cfg.completion_rounds * cfg.completion_calls
    with tm.track("in_flow") as scope:
        for _ in range(n):
            inner.clear()
            t0 = perf_counter_ns()
            wrapped(model=MODEL, messages=MESSAGES, mock_response="Hello!")
            own.append((perf_counter_ns() - t0 - inner[0]) / 1000)
        # The call that fills the meter's queue counts the batch; the rest is counted
        # here, and charged to the last call, so that every call's work is timed.
        t0 = perf_counter_ns()
        scope.meter._settle()
        own[-1] += (perf_counter_ns() - t0) / 1000
    if scope.usage.calls != n:
        raise AssertionError(f"tokenmeter recorded {scope.usage.calls} of {n} completions")
    return own


def import_time(cfg: Config) -> dict[str, Any]:
    """``import tokenmeter`` in fresh processes against ``python -c pass``, interleaved."""
    env = dict(os.environ)
    # Bytecode caches as an installed package has them (make exports this variable).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmds = {"pass": "pass", "import": "import tokenmeter"}

    def once(code: str) -> float:
        t0 = perf_counter_ns()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return (perf_counter_ns() - t0) / 1e6

    for code in cmds.values():
        once(code)  # warm-up (writes bytecode caches, warms the file cache)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(cfg.import_runs):
        for k, code in cmds.items():
            times[k].append(once(code))
    probe = (
        "import sys, tokenmeter; "
        "loaded = {m: m in sys.modules for m in "
        "('litellm', 'attrs', 'inspect', 'json', 'logging', 'tokenmeter._report', "
        "'tokenmeter._record', 'tokenmeter._usage', 'tokenmeter._pricing')}; "
        "import json; print(json.dumps(loaded))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], check=True, env=env, capture_output=True, text=True
        ).stdout
    )
    # One -X importtime run: tokenmeter's own figure and its heaviest imports.
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import tokenmeter"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stderr
    rows = []
    for line in err.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((m.group(4), int(m.group(1)), int(m.group(2)), len(m.group(3)) // 2))
    total_us = next((cum for name, _, cum, lvl in rows if name == "tokenmeter" and lvl == 0), 0)
    heavy = sorted(
        ((name, cum) for name, _, cum, lvl in rows if lvl == 1 and cum >= 500),
        key=lambda x: -x[1],
    )
    return {
        "pass_ms": times["pass"],
        "import_ms": times["import"],
        "loaded": loaded,
        "importtime_total_ms": total_us / 1000,
        "importtime_children_ms": {n: us / 1000 for n, us in heavy[:8]},
    }


def memory(cfg: Config, keep_records: bool) -> dict[str, Any]:
    """Bytes retained per ``meter.record()`` call, measured with tracemalloc."""
    import tokenmeter as tm

    meter = tm.Meter(keep_records=keep_records, max_records=2_000_000)
    record = meter.record
    n = cfg.memory_calls
    checkpoints = (n // 10, n)
    growth: dict[int, int] = {}
    with meter.track("memory"):
        for _ in range(1000):  # warm-up: the scope's accumulator exists
            record(model=MODEL, input_tokens=10, output_tokens=20, cost_usd=0.000015)
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            done = 0
            for cp in checkpoints:
                for _ in range(cp - done):
                    record(model=MODEL, input_tokens=10, output_tokens=20, cost_usd=0.000015)
                done = cp
                gc.collect()
                growth[cp] = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
    usage = meter.root.usage
    if usage.calls != n + 1000:
        raise AssertionError(f"expected {n + 1000} calls, meter has {usage.calls}")
    kept = len(meter.records())
    return {
        "calls": n,
        "growth_bytes": {str(k): v for k, v in growth.items()},
        "bytes_per_call": growth[n] / n,
        "records_kept": kept,
    }


# -- machine ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    from importlib import metadata

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

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count() or 0
    commit = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        here = os.path.dirname(os.path.abspath(__file__))
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=here,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        commit = sha + ("+dirty" if dirty else "")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": os_name,
        "tokenmeter": version("tokenmeter"),
        "litellm": version("litellm"),
        "attrs": version("attrs"),
        "opentelemetry-sdk": version("opentelemetry-sdk"),
        "opentelemetry-api": version("opentelemetry-api"),
        "commit": commit,
        "loadavg_start": None,
        "loadavg_end": None,
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


# -- output -----------------------------------------------------------------------------


def _fmt_us(x: float) -> str:
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.3f}"


def _fmt_ratio(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}x"
    if x >= 10:
        return f"{x:.1f}x"
    return f"{x:.2f}x"


def table(all_cases: list[Case]) -> str:
    by = {c.key: c for c in all_cases if c.samples_us}
    floor = by["floor_contextvar"].median() if "floor_contextvar" in by else None
    otel = by["otel_sdk"].median() if "otel_sdk" in by else None
    lines = [
        "| operation | median (us) | IQR (us) | x floor | x OTel SDK span |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in all_cases:
        if c.error is not None or not c.samples_us:
            lines.append(f"| {c.label} | FAILED | | | |")
            continue
        m = c.median()
        q1, q3 = c.quartiles()
        rf = _fmt_ratio(m / floor) if floor else ""
        ro = _fmt_ratio(m / otel) if otel else ""
        lines.append(f"| {c.label} | {_fmt_us(m)} | {_fmt_us(q3 - q1)} | {rf} | {ro} |")
    return "\n".join(lines)


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: check it runs")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.time()
    info = machine()
    info["loadavg_start"] = _loadavg()
    errors: list[tuple[str, str]] = []

    log("importing litellm (instrumented by tokenmeter) ...")
    import litellm  # noqa: F401  (imported once, as in a real program; tokenmeter attaches)

    import tokenmeter as tm

    tm.reset()
    all_cases = cases()
    log(f"timing {len(all_cases)} benchmarks, {cfg.rounds} interleaved rounds ...")
    run_cases(all_cases, cfg, log)
    errors += [(c.key, c.error) for c in all_cases if c.error is not None]

    extra: dict[str, Any] = {}
    for key, fn in (
        ("completion", lambda: whole_completion(cfg)),
        ("import", lambda: import_time(cfg)),
        ("memory_records_off", lambda: memory(cfg, keep_records=False)),
        ("memory_records_on", lambda: memory(cfg, keep_records=True)),
    ):
        log(f"{key} ...")
        try:
            extra[key] = fn()
        except Exception:
            errors.append((key, traceback.format_exc()))
    info["loadavg_end"] = _loadavg()

    out: list[str] = []
    title = "tokenmeter benchmarks" + (" (QUICK MODE: timings are not meaningful)" * cfg.quick)
    out += [f"## {title}", "", table(all_cases), ""]

    by = {c.key: c for c in all_cases if c.samples_us}
    targets: list[dict[str, Any]] = []

    def target(name: str, value: str, goal: str, ok: bool) -> None:
        targets.append({"target": name, "measured": value, "goal": goal, "met": ok})

    comp = extra.get("completion")
    if comp:
        on, off = statistics.median(comp["with_us"]), statistics.median(comp["without_us"])
        ratios = [a / b for a, b in zip(comp["with_us"], comp["without_us"], strict=True)]
        q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else None
        spread = (
            f"; per-round ratios: median {statistics.median(ratios):.3f}, IQR {q[0]:.3f}-{q[2]:.3f}"
            if q
            else ""
        )
        out += [
            "### A whole `litellm.completion(mock_response=...)`",
            "",
            f"- without tokenmeter: median {_fmt_us(off)} us per call",
            f"- with tokenmeter attached (inside a scope): median {_fmt_us(on)} us per call",
            f"- ratio of the medians, with/without: {on / off:.3f}{spread}"
            f" ({cfg.completion_rounds} interleaved rounds of {cfg.completion_calls} calls)",
        ]
        flow = comp["in_flow_us"]
        if flow:
            fq = statistics.quantiles(flow, n=4, method="inclusive") if len(flow) > 1 else None
            out.append(
                f"- tokenmeter's own time inside each call (wrapper minus LiteLLM), "
                f"{len(flow)} calls: median {_fmt_us(statistics.median(flow))} us"
                + (f", IQR {_fmt_us(fq[0])}-{_fmt_us(fq[2])} us" if fq else "")
            )
        out.append("")
    imp = extra.get("import")
    if imp:
        p, i = statistics.median(imp["pass_ms"]), statistics.median(imp["import_ms"])
        loaded = imp["loaded"]
        out += [
            "### `import tokenmeter` in a fresh process",
            "",
            f"- `python -c pass`: median {p:.1f} ms; `python -c 'import tokenmeter'`: "
            f"median {i:.1f} ms; tokenmeter's extra: **{i - p:.1f} ms** "
            f"({cfg.import_runs} interleaved runs each)",
            f"- `-X importtime` total for tokenmeter: {imp['importtime_total_ms']:.1f} ms; "
            "heaviest direct imports: "
            + ", ".join(f"{n} {ms:.1f} ms" for n, ms in imp["importtime_children_ms"].items()),
            "- loaded by `import tokenmeter`: "
            + ", ".join(f"{m}: {'yes' if v else 'no'}" for m, v in loaded.items()),
            "",
        ]
        if loaded.get("litellm"):
            errors.append(("import", "`import tokenmeter` imported litellm"))
        target(
            "`import tokenmeter` (extra over `python -c pass`)",
            f"{i - p:.1f} ms",
            f"<= {TARGET_IMPORT_MS:.0f} ms",
            i - p <= TARGET_IMPORT_MS,
        )
        target(
            "`import tokenmeter` does not import litellm",
            "not imported" if not loaded.get("litellm") else "IMPORTED",
            "not imported",
            not loaded.get("litellm"),
        )
    moff, mon = extra.get("memory_records_off"), extra.get("memory_records_on")
    if moff or mon:
        out += ["### Memory (tracemalloc, bytes retained after the calls, gc collected)", ""]
        for label, mem in (
            ("per-call records off (default)", moff),
            ("per-call records on (`keep_records=True`)", mon),
        ):
            if mem:
                g = mem["growth_bytes"]
                out.append(
                    f"- {label}: {mem['calls']:,} `record()` calls: "
                    + ", ".join(f"after {int(k):,} calls {v:+,} B" for k, v in g.items())
                    + f"; **{mem['bytes_per_call']:.2f} B per call**"
                )
        out.append("")
        if moff:
            target(
                "memory with per-call records off",
                f"{moff['bytes_per_call']:.3f} B/call",
                "flat (< 0.01 B/call)",
                moff["bytes_per_call"] < 0.01,
            )
    if "track_flat" in by:
        m = by["track_flat"].median()
        target(
            '`with tm.track("x")` enter+exit',
            f"{m:.3f} us",
            f"<= {TARGET_SCOPE_US} us",
            m <= TARGET_SCOPE_US,
        )
        if "otel_sdk" in by:
            r = by["otel_sdk"].median() / m
            target(
                "OTel SDK span / tokenmeter scope",
                f"{r:.1f}x",
                f">= {TARGET_OTEL_RATIO:.0f}x",
                r >= TARGET_OTEL_RATIO,
            )
    # tokenmeter's own work on a call: the wrapped function's time minus the bare one's.
    for wrapped_key, bare_key, what in (
        ("litellm_wrapped", "litellm_bare", "a LiteLLM call"),
        ("litellm_async_wrapped", "litellm_async_bare", "an async LiteLLM call"),
    ):
        if wrapped_key in by and bare_key in by:
            m = by[wrapped_key].median()
            own = m - by[bare_key].median()
            in_flow = (
                f"; inside real calls: {statistics.median(comp['in_flow_us']):.1f} us"
                if comp and comp["in_flow_us"] and wrapped_key == "litellm_wrapped"
                else ""
            )
            target(
                f"tokenmeter's own work on {what} (wrapped minus bare)",
                f"{own:.3f} us (wrapped {m:.3f} us){in_flow}",
                f"<= {TARGET_ATTRIBUTION_US} us",
                own <= TARGET_ATTRIBUTION_US,
            )
    if "record_1t" in by:
        m = by["record_1t"].median()
        target(
            "`tm.record(...)`, one thread",
            f"{m:.3f} us",
            f"<= {TARGET_RECORD_US} us",
            m <= TARGET_RECORD_US,
        )
    if targets:
        out += ["### Targets", "", "| target | measured | goal | |", "|---|---|---|---|"]
        out += [
            f"| {t['target']} | {t['measured']} | {t['goal']} | {_met(t['met'])} |" for t in targets
        ]
        out.append("")
    out += ["### Machine", ""]
    out += [f"- {k}: {v}" for k, v in info.items()]
    out += [
        f"- run took {time.time() - started:.0f} s" + (" (quick mode)" if cfg.quick else ""),
        "",
    ]
    print("\n".join(out))

    if args.json:
        data = {
            "quick": cfg.quick,
            "machine": info,
            "results": [
                {
                    "key": c.key,
                    "label": c.label,
                    "median_us": c.median() if c.samples_us else None,
                    "q1_us": c.quartiles()[0] if c.samples_us else None,
                    "q3_us": c.quartiles()[1] if c.samples_us else None,
                    "loops": c.loops,
                    "ops_per_loop": c.ops,
                    "samples_us": c.samples_us,
                    "error": c.error,
                }
                for c in all_cases
            ],
            **extra,
            "targets": targets,
        }
        with open(args.json, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    for key, err in errors:
        log(f"\nbenchmark {key} FAILED:\n{err}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
