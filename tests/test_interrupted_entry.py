"""An interrupt landing anywhere inside a scope's entry leaves the enclosing scope current.

A KeyboardInterrupt (or any exception a signal handler raises) can land between any two
instructions of ``Track.__enter__`` or of a ``@tracked`` wrapper before the function runs.
An opcode-level trace raises it at each instruction of the entry's own code in turn
(``_track``, ``_tracked``; an interrupt inside a function they call comes out of that
call, where the trace raises too), one run per instruction, until a run goes through
uninterrupted; not at a ``return`` or at the ``NOP`` marking a ``try:`` line,
where CPython checks for no signal (only a trace function can raise there, and no
``try`` covers them). After each interrupted entry the scope current before it is
current again and a call lands there; the interrupted scope counts an entry if and only
if the interrupt came after its count (an entry that ended at once: never two, never one
left open).
"""

from __future__ import annotations

import dis
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import tokenmeter as tm
from tokenmeter._events import add_observer, remove_observer
from tokenmeter._meter import DEFAULT_METER

ENTRY_CODE = tuple(str(Path(tm.__file__).parent / f) for f in ("_track.py", "_tracked.py"))
CALL: dict[str, Any] = {
    "model": "m",
    "provider": "p",
    "input_tokens": 1,
    "output_tokens": 1,
    "cost_usd": 0.001,
}
NEVER = 10**9


class Interrupt:
    """While entered: KeyboardInterrupt at the ``at``-th instruction run in `ENTRY_CODE`."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.seen = 0
        self.fired = False

    def _opcode(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            # Again at each line: CPython 3.13.0 ignores it set in the "call" event of a
            # function that ran before (no opcode events then, nothing interrupted).
            frame.f_trace_opcodes = True
        if event == "opcode" and not self.fired and not _uncovered(frame):
            if self.seen == self.at:
                self.fired = True
                raise KeyboardInterrupt
            self.seen += 1
        return self._opcode

    def _call(self, frame: FrameType, event: str, arg: Any) -> Any:
        if self.fired or frame.f_code.co_filename not in ENTRY_CODE:
            return None
        frame.f_trace_opcodes = True
        return self._opcode

    def __enter__(self) -> Interrupt:
        self._old = sys.gettrace()
        sys.settrace(self._call)
        return self

    def __exit__(self, *exc: object) -> None:
        self.off()

    def off(self) -> None:
        """Stop tracing (the body of the entered scope runs untraced)."""
        sys.settrace(self._old)


#: Where CPython checks for no signal and no ``try`` covers: only a trace function raises there.
UNCOVERED = ("RETURN_VALUE", "RETURN_CONST", "NOP")  # NOP: a ``try:`` line's marker


def _uncovered(frame: FrameType) -> bool:
    """At an instruction in `UNCOVERED`."""
    return dis.opname[frame.f_code.co_code[frame.f_lasti]] in UNCOVERED


Enter = Callable[[tm.Meter, Interrupt], bool]


def entry_counts(enter: Enter, meter: tm.Meter, outer: str | None) -> list[int]:
    """Interrupt ``enter`` (entering scope "inner" of ``meter``) at each instruction in turn.

    Each round: "inner" entered in full (later entries find its cached frame), the
    interrupted entry, one call, "inner" entered in full again. Checked each round: the
    scope current before the entry is current after it and gets the call; "inner" got
    one call per body that ran. Returns the interrupted entry's count, per instruction.
    """
    counts: list[int] = []
    at = 0
    while True:
        meter.reset()
        ctx = meter.track(outer) if outer is not None else None
        before = ctx.__enter__() if ctx is not None else meter.current()
        assert enter(meter, Interrupt(NEVER))
        irq = Interrupt(at)
        ran = False
        try:
            ran = enter(meter, irq)
        except KeyboardInterrupt:
            assert irq.fired
        assert ran is not irq.fired, f"instruction {at}: the body ran after the interrupt"
        assert meter.current() is before, f"instruction {at}: {meter.current()!r} left current"
        meter.record(**CALL)
        assert enter(meter, Interrupt(NEVER))
        if ctx is not None:
            ctx.__exit__(None, None, None)
        assert meter.current() is meter.root
        rep = meter.report()
        inner = rep.find("inner")
        assert inner.usage.calls == 2 + ran
        assert rep.total.calls == 3 + ran  # the one call between the entries landed outside "inner"
        if outer is not None:
            assert rep.node(outer).self_usage.calls == 1
        counts.append(inner.entries - 2)
        if not irq.fired:
            return counts
        at += 1


def assert_counted_from_one_point(counts: list[int]) -> None:
    """Interrupted before the entry's count: no entry; from the count on, and uninterrupted: one."""
    assert 1 in counts, counts
    k = counts.index(1)
    assert k > 0, counts
    assert counts == [0] * k + [1] * (len(counts) - k), counts
    assert len(counts) > k + 1, "no instruction after the count was interrupted"


def track_of(meter: tm.Meter, **options: Any) -> tm.Track:
    """Scope "inner" of ``meter``; of the current scope's meter (a plain one) for the default."""
    if meter is DEFAULT_METER:
        return tm.track("inner", **options)
    return meter.track("inner", **options)


def with_track(**options: Any) -> Enter:
    def enter(meter: tm.Meter, irq: Interrupt) -> bool:
        track = (
            tm.track("inner", **options)
            if meter is DEFAULT_METER
            else meter.track("inner", **options)
        )
        with irq, track:
            irq.off()
            meter.record(**CALL)
            return True

    return enter


@pytest.mark.parametrize("outer", ["outer", None], ids=["nested", "top-level"])
@pytest.mark.parametrize(
    "options", [{}, {"module": "m"}, {"max_calls": 100}], ids=["plain", "module", "budget"]
)
def test_an_interrupt_anywhere_in_enter_leaves_the_enclosing_scope_current(
    outer: str | None, options: dict[str, Any]
) -> None:
    """with track(): an interrupt at any instruction of the entry; the scope before is current."""
    meter = tm.Meter() if outer is not None else DEFAULT_METER
    assert_counted_from_one_point(entry_counts(with_track(**options), meter, outer))


def async_with_track(meter: tm.Meter, irq: Interrupt) -> bool:
    async def main() -> bool:
        with irq:
            async with track_of(meter):
                irq.off()
                meter.record(**CALL)
                return True

    return bool(_run(main()))


def _run(coro: Any) -> Any:
    """Drive ``coro`` to its end in this context (no event loop: nothing in it awaits)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the coroutine awaited something")


def tracked_call(kind: str) -> Enter:
    def enter(meter: tm.Meter, irq: Interrupt) -> bool:
        ran = []

        def body() -> None:
            irq.off()
            meter.record(**CALL)
            ran.append(1)

        opts: dict[str, Any] = {} if meter is DEFAULT_METER else {"meter": meter}
        if kind == "sync":
            fn = tm.tracked("inner", **opts)(body)
            with irq:
                fn()
        elif kind == "async":

            async def abody() -> None:
                body()

            afn = tm.tracked("inner", **opts)(abody)
            with irq:
                _run(afn())
        else:

            def items() -> Iterator[int]:
                body()
                yield 1

            gfn = tm.tracked("inner", **opts)(items)
            with irq:
                gen = gfn()  # enters and leaves the scope; enters it again to run the body
                next(gen)
            gen.close()
        return bool(ran)

    return enter


@pytest.mark.parametrize("outer", ["outer", None], ids=["nested", "top-level"])
def test_an_interrupt_anywhere_in_async_enter_leaves_the_enclosing_scope_current(
    outer: str | None,
) -> None:
    """async with track(): an interrupt anywhere in the entry; the scope before is current."""
    meter = tm.Meter() if outer is not None else DEFAULT_METER
    assert_counted_from_one_point(entry_counts(async_with_track, meter, outer))


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")  # interrupted before it ran
@pytest.mark.parametrize("outer", ["outer", None], ids=["nested", "top-level"])
@pytest.mark.parametrize("kind", ["sync", "async", "generator"])
def test_an_interrupt_anywhere_in_a_tracked_wrapper_leaves_the_enclosing_scope_current(
    kind: str, outer: str | None
) -> None:
    """@tracked: an interrupt anywhere before the function runs; the scope before is current."""
    meter = tm.Meter() if outer is not None else DEFAULT_METER
    assert_counted_from_one_point(entry_counts(tracked_call(kind), meter, outer))


class Entries:
    """An observer keeping the frames entered and not yet left."""

    def __init__(self) -> None:
        self.open: set[int] = set()
        self.entered = 0

    def on_enter(self, frame: Any) -> None:
        self.open.add(id(frame))
        self.entered += 1

    def on_exit(self, frame: Any) -> None:
        self.open.discard(id(frame))


@pytest.mark.parametrize("enter", [with_track(), tracked_call("sync")], ids=["with", "tracked"])
def test_observers_see_an_interrupted_entry_left(enter: Enter) -> None:
    """With an observer: an interrupt anywhere in the entry; every frame it saw entered is left."""
    seen = Entries()
    add_observer(seen)
    try:
        assert_counted_from_one_point(entry_counts(enter, tm.Meter(), "outer"))
    finally:
        remove_observer(seen)
    assert seen.entered > 0
    assert seen.open == set()
