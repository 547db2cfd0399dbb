"""LiteLLM attribution: tokenmeter's own work around a call, isolated from LiteLLM.

The wrapped functions are tokenmeter's real wrappers, obtained through the public
switch: a stand-in is put in place of ``litellm.completion`` (or ``acompletion``),
``tm.instrument()`` wraps it, and LiteLLM's own function is put back. The
stand-in returns at once a real ``ModelResponse`` from a mock completion, so each
wrapped row minus its bare row is tokenmeter's work on one call.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable
from itertools import repeat
from time import perf_counter_ns
from typing import Any

from harness import Case, Probe, Runner, memory_per_call

TITLE = "LiteLLM attribution"
ORDER = 30

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello."}]


def _response() -> Any:
    """A real ModelResponse of a mock completion, ``_hidden_params`` as LiteLLM sets them."""
    import litellm

    import tokenmeter as tm

    tm.uninstrument()
    try:
        resp = litellm.completion(model=MODEL, messages=MESSAGES, mock_response="Hello!")
    finally:
        tm.instrument()
    hp = resp._hidden_params
    if not (hp.get("litellm_model_name") and hp.get("response_cost")):
        raise AssertionError(f"a mock response without a model or a cost: {hp}")
    return resp


def _wrapped(name: str, fake: Callable[..., Any]) -> Callable[..., Any]:
    """tokenmeter's wrapper around ``fake``, as it wraps ``litellm.<name>``."""
    import litellm

    import tokenmeter as tm

    tm.uninstrument()
    real = getattr(litellm, name)
    setattr(litellm, name, fake)
    try:
        tm.instrument()
        wrapped: Callable[..., Any] = getattr(litellm, name)
        tm.uninstrument()
    finally:
        setattr(litellm, name, real)
        tm.instrument()
    if wrapped is fake:
        raise AssertionError(f"tm.instrument() did not wrap litellm.{name}")
    return wrapped


def _fake_sync() -> Callable[..., Any]:
    resp = _response()

    def completion(*args: Any, **kwargs: Any) -> Any:
        return resp

    return completion


def _fake_async() -> Callable[..., Any]:
    resp = _response()

    async def acompletion(*args: Any, **kwargs: Any) -> Any:
        return resp

    return acompletion


def _drive(fn: Callable[[], Any], loops: int) -> None:
    for _ in repeat(None, loops):
        coro = fn()
        try:
            coro.send(None)
        except StopIteration:
            pass


def sync_bare() -> Runner:
    completion = _fake_sync()

    def run(loops: int) -> None:
        for _ in repeat(None, loops):
            completion(model=MODEL, messages=MESSAGES)

    return run


def sync_wrapped(keep_records: bool) -> Callable[[], Runner]:
    def setup() -> Runner:
        import tokenmeter as tm

        wrapped = _wrapped("completion", _fake_sync())
        meter = tm.Meter(keep_records=True) if keep_records else None
        track = meter.track if meter is not None else tm.track

        def run(loops: int) -> None:
            with track("call") as scope:
                for _ in repeat(None, loops):
                    wrapped(model=MODEL, messages=MESSAGES)
                # Calls may wait in the meter's queue: reading the scope counts them, in the time.
                scope.usage  # noqa: B018

        run(3)
        if meter is not None:
            calls = meter.report().node("call").usage.calls
        else:
            tm.reset()
            run(3)
            calls = tm.report().node("call").usage.calls
        if calls != 3:
            raise AssertionError(f"3 wrapped calls counted {calls}")
        return run

    return setup


def async_bare() -> Runner:
    acompletion = _fake_async()

    def run(loops: int) -> None:
        _drive(lambda: acompletion(model=MODEL, messages=MESSAGES), loops)

    return run


def async_wrapped() -> Runner:
    import tokenmeter as tm

    wrapped = _wrapped("acompletion", _fake_async())

    def call() -> Any:
        return wrapped(model=MODEL, messages=MESSAGES)

    def run(loops: int) -> None:
        with tm.track("call") as scope:
            _drive(call, loops)
            scope.usage  # noqa: B018  (counts what waits in the queue, in the time)

    tm.reset()
    run(3)
    calls = tm.report().node("call").usage.calls
    if calls != 3:
        raise AssertionError(f"3 wrapped calls counted {calls}")
    return run


CASES = [
    Case("litellm_bare", "trivial `completion()` returning a ModelResponse, bare", sync_bare),
    Case(
        "litellm_wrapped",
        "the same, wrapped by tokenmeter (inside a scope)",
        sync_wrapped(keep_records=False),
        hot=True,
    ),
    Case(
        "litellm_wrapped_records",
        "the same, per-call records kept (`Meter(keep_records=True)`)",
        sync_wrapped(keep_records=True),
    ),
    Case(
        "litellm_async_bare",
        "trivial `acompletion()` coroutine, bare (driven by `send(None)`)",
        async_bare,
    ),
    Case(
        "litellm_async_wrapped",
        "the same, wrapped by tokenmeter (inside a scope)",
        async_wrapped,
        hot=True,
    ),
]


# -- whole calls ------------------------------------------------------------------------


def whole_completion(quick: bool) -> dict[str, Any]:
    """``litellm.completion(mock_response=...)`` with tokenmeter attached and detached.

    Interleaved batches, alternating which goes first. Then tokenmeter's own time
    inside real calls: a shim between tokenmeter's wrapper and LiteLLM's function
    times LiteLLM's part, and the wrapper's time minus it is tokenmeter's.
    """
    import litellm

    import tokenmeter as tm

    rounds, calls = (1, 2) if quick else (20, 20)

    def batch(n: int) -> float:
        t0 = perf_counter_ns()
        for _ in range(n):
            litellm.completion(model=MODEL, messages=MESSAGES, mock_response="Hello!")
        return (perf_counter_ns() - t0) / 1000 / n

    on: list[float] = []
    off: list[float] = []

    def without() -> None:
        tm.uninstrument()
        try:
            gc.collect()
            off.append(batch(calls))
        finally:
            tm.instrument()

    def with_() -> None:
        gc.collect()
        before = scope.usage.calls
        on.append(batch(calls))
        if scope.usage.calls - before != calls:
            raise AssertionError(f"recorded {scope.usage.calls - before} of {calls} completions")

    with tm.track("completion") as scope:
        batch(2)  # warm-up
        for r in range(rounds):
            for step in (without, with_) if r % 2 == 0 else (with_, without):
                step()

    real = litellm.completion
    original = getattr(real, "__tokenmeter_original__", real)
    inner: list[int] = []

    def shim(*args: Any, **kwargs: Any) -> Any:
        t0 = perf_counter_ns()
        try:
            return original(*args, **kwargs)
        finally:
            inner.append(perf_counter_ns() - t0)

    wrapped = _wrapped("completion", shim)
    own: list[float] = []
    n = 4 if quick else rounds * calls
    with tm.track("in_flow") as scope:
        for _ in range(n):
            inner.clear()
            t0 = perf_counter_ns()
            wrapped(model=MODEL, messages=MESSAGES, mock_response="Hello!")
            own.append((perf_counter_ns() - t0 - inner[0]) / 1000)
        t0 = perf_counter_ns()
        counted = scope.usage.calls  # counts what waits in the queue: charged to the last call
        own[-1] += (perf_counter_ns() - t0) / 1000
    if counted != n:
        raise AssertionError(f"recorded {counted} of {n} completions")
    return {
        "rounds": rounds,
        "calls_per_round": calls,
        "with_us": statistics.median(on),
        "without_us": statistics.median(off),
        "ratio": statistics.median(on) / statistics.median(off),
        "own_in_flow_us": statistics.median(own),
        "own_in_flow_q1_q3_us": (
            statistics.quantiles(own, n=4, method="inclusive")[::2]
            if len(own) > 1
            else [own[0]] * 2
        ),
    }


# -- memory per call --------------------------------------------------------------------


def memory(quick: bool) -> dict[str, Any]:
    """Bytes retained per wrapped call (the timed rows' stand-in), records off and on.

    Every call returns the same response, so strings a kept record shares with its
    response (the id, the model) are not counted: a real call's are its own.
    """
    wrapped = _wrapped("completion", _fake_sync())

    def call_for(meter: Any) -> Callable[[], Any]:
        return lambda: wrapped(model=MODEL, messages=MESSAGES)

    return memory_per_call(2_000 if quick else 50_000, call_for)


PROBES = [
    Probe("completion", "a whole `litellm.completion(mock_response=...)`", whole_completion),
    Probe("litellm_memory", "memory per wrapped LiteLLM call (tracemalloc)", memory),
]
