"""Scopes: ``with tm.track(...)`` and ``@tm.tracked``, as users write them."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from itertools import repeat
from typing import Any

from harness import Case, Runner

TITLE = "Scopes"
ORDER = 10


@contextlib.contextmanager
def _open_scopes(depth: int) -> Iterator[None]:
    """``depth`` nested scopes open around the loop (a constant per round, not per op)."""
    import tokenmeter as tm

    with contextlib.ExitStack() as stack:
        for i in range(depth):
            stack.enter_context(tm.track(f"level{i}"))
        yield


def _check_counted(name: str, run: Runner) -> None:
    """The timed loop really enters the scope: its entry count grows by the loops."""
    import tokenmeter as tm

    tm.reset()
    run(3)
    # Scopes are found by name anywhere in the tree: depth varies by case.
    entries = sum(s.entries for s in tm.report().walk() if s.name == name)
    if entries != 3:
        raise AssertionError(f"{name}: 3 loops counted {entries} entries")


def track_case(depth: int) -> Callable[[], Runner]:
    def setup() -> Runner:
        import tokenmeter as tm

        def loop(loops: int) -> None:
            track = tm.track
            for _ in repeat(None, loops):
                with track("step"):
                    pass

        # The outer scopes stay open in a context of their own, entered once here.
        ctx = contextvars.copy_context()
        ctx.run(lambda: _open_scopes(depth).__enter__())

        def run(loops: int) -> None:
            ctx.run(loop, loops)

        _check_counted("step", run)
        return run

    return setup


def track_fanout() -> Runner:
    """``with tm.track(name)`` cycling over 1,000 sibling names (one loop = 1,000 ops)."""
    import tokenmeter as tm

    names = [f"step{i}" for i in range(1000)]

    def run(loops: int) -> None:
        track = tm.track
        for ns in repeat(names, loops):
            for name in ns:
                with track(name):
                    pass

    return run


def track_prebuilt() -> Runner:
    import tokenmeter as tm

    step = tm.track("step")

    def run(loops: int) -> None:
        for _ in repeat(None, loops):
            with step:
                pass

    _check_counted("step", run)
    return run


def track_options() -> Runner:
    """A scope with a module, an operation and an attribute: the frame cannot be shared."""
    import tokenmeter as tm

    def run(loops: int) -> None:
        track = tm.track
        for _ in repeat(None, loops):
            with track("step", module="planner", operation="plan", user="u1"):
                pass

    _check_counted("step", run)
    return run


def engine_enter_exit() -> Runner:
    """The scope engine's entry and exit, called as functions (no ``with`` statement).

    ``_scope.enter`` + ``exit_`` where the engine has them; where ``_scope.enter`` is
    gone, ``Track.__enter__`` + ``__exit__`` of ``tm.track("step")``.
    """
    try:
        from tokenmeter._scope import enter, exit_
    except ImportError:
        import tokenmeter as tm

        step = tm.track("step")
        enter_track, exit_track = step.__enter__, step.__exit__

        def run_track(loops: int) -> None:
            for _ in repeat(None, loops):
                enter_track()
                exit_track(None, None, None)

        return run_track

    def run(loops: int) -> None:
        for _ in repeat(None, loops):
            token, _scope = enter(None, "step", None, None, None, None)
            exit_(token)

    return run


def _plain() -> None:
    return None


async def _aplain() -> None:
    return None


def _call_loop(fn: Callable[[], object]) -> Runner:
    def run(loops: int) -> None:
        for _ in repeat(None, loops):
            fn()

    return run


def _drive_loop(fn: Callable[[], Any]) -> Runner:
    """Call a coroutine function and drive the coroutine to its end (no event loop)."""

    def run(loops: int) -> None:
        for _ in repeat(None, loops):
            coro = fn()
            try:
                coro.send(None)
            except StopIteration:
                pass

    return run


def sync_tracked() -> Runner:
    import tokenmeter as tm

    def work() -> None:
        return None

    run = _call_loop(tm.tracked(work))
    _check_counted(work.__qualname__, run)
    return run


def coro_tracked() -> Runner:
    import tokenmeter as tm

    async def awork() -> None:
        return None

    run = _drive_loop(tm.tracked(awork))
    _check_counted(awork.__qualname__, run)
    return run


def gen_tracked() -> Runner:
    """A generator of one item, ``@tm.tracked``, called and run to its end."""
    import tokenmeter as tm

    def items() -> Iterator[int]:
        yield 1

    wrapped = tm.tracked(items)

    def run(loops: int) -> None:
        for _ in repeat(None, loops):
            for _item in wrapped():
                pass

    _check_counted(items.__qualname__, run)
    return run


CASES = [
    Case("track_flat", '`with tm.track("x")` enter+exit', track_case(0), hot=True),
    Case("track_depth1", '`with tm.track("x")`, nested at depth 1', track_case(1)),
    Case("track_depth20", '`with tm.track("x")`, nested at depth 20', track_case(20)),
    Case(
        "track_fanout1000",
        "`with tm.track(name)`, 1,000 distinct sibling names",
        track_fanout,
        ops=1000,
    ),
    Case("track_prebuilt", '`with step:` (`step = tm.track("x")` built once)', track_prebuilt),
    Case(
        "track_options",
        '`with tm.track("x", module=..., operation=..., user=...)`',
        track_options,
    ),
    Case("engine", "scope engine only: enter + exit as calls", engine_enter_exit),
    Case("sync_plain", "sync function, undecorated", lambda: _call_loop(_plain)),
    Case("sync_tracked", "sync function, `@tm.tracked`", sync_tracked, hot=True),
    Case(
        "coro_plain",
        "coroutine, undecorated (driven by `send(None)`)",
        lambda: _drive_loop(_aplain),
    ),
    Case(
        "coro_tracked", "coroutine, `@tm.tracked` (driven by `send(None)`)", coro_tracked, hot=True
    ),
    Case("gen_tracked", "generator of one item, `@tm.tracked`, run to its end", gen_tracked),
]
