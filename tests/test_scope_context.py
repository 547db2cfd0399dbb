"""Leaving a scope leaves the caller's context exactly as it was: the scope ContextVar unset."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import tokenmeter as tm
from tokenmeter import _scope

CURRENT = _scope.CURRENT


def _keys_after(body: Callable[[], Any]) -> list[str]:
    """Run ``body`` in an empty Context; the names of the ContextVars set there afterwards."""

    def run() -> list[str]:
        body()
        return sorted(v.name for v in contextvars.copy_context())

    return contextvars.Context().run(run)


def _drive(coro: Any) -> None:
    """Drive a coroutine that never suspends to its end, in the current context."""
    try:
        coro.send(None)
    except StopIteration:
        pass


def test_with_track_leaves_the_var_unset() -> None:
    """After the outermost `with tm.track('x')` exits (first and cached entry), CURRENT is unset."""

    def body() -> None:
        with tm.track("ctx_with"):
            pass
        assert CURRENT not in contextvars.copy_context()
        with tm.track("ctx_with"):
            with tm.track("inner"):
                pass
            assert CURRENT.get() is not None

    assert _keys_after(body) == []


def test_with_track_options_and_meter_leave_the_var_unset() -> None:
    """`track` with module/attributes/budget and `Meter().track` leave CURRENT unset too."""
    meter = tm.Meter()

    def body() -> None:
        with tm.track("ctx_opts", module="m", operation="o", user="u"):
            pass
        with tm.track("ctx_budget", max_calls=3):
            pass
        with meter.track("ctx_meter"):
            pass

    assert _keys_after(body) == []


def test_exception_in_with_track_leaves_the_var_unset() -> None:
    """An exception leaving the outermost `with tm.track` also leaves CURRENT unset."""

    def body() -> None:
        for _ in range(2):
            try:
                with tm.track("ctx_raise"):
                    raise KeyError("k")
            except KeyError:
                pass

    assert _keys_after(body) == []


def test_async_with_track_leaves_the_var_unset() -> None:
    """After the outermost `async with tm.track('x')` exits, CURRENT is unset."""

    async def main() -> None:
        for _ in range(2):
            async with tm.track("ctx_async"):
                pass

    assert _keys_after(lambda: _drive(main())) == []


def test_tracked_functions_leave_the_var_unset() -> None:
    """Calls of @tracked sync, coroutine, generator and async generator functions leave it unset."""

    @tm.tracked
    def f() -> int:
        return 1

    @tm.tracked
    async def af() -> int:
        return 2

    @tm.tracked
    def gen() -> Iterator[int]:
        yield 3

    @tm.tracked
    async def agen() -> AsyncIterator[int]:
        yield 4

    async def drain() -> list[int]:
        return [x async for x in agen()]

    def body() -> None:
        for _ in range(2):
            assert f() == 1
            _drive(af())
            assert list(gen()) == [3]
            _drive(drain())

    assert _keys_after(body) == []


def test_enter_exit_called_directly_leave_the_var_unset() -> None:
    """`Track.__enter__` / `__exit__` called as functions leave CURRENT unset at the top level."""
    t = tm.track("ctx_calls")

    def body() -> None:
        for _ in range(2):
            t.__enter__()
            t.__exit__(None, None, None)

    assert _keys_after(body) == []


def test_one_track_open_in_two_contexts_leaves_both_unset() -> None:
    """One shared Track entered in context A, then B, left in A, then B: both end unset."""
    tm.reset()
    t = tm.track("ctx_shared")
    a, b = contextvars.Context(), contextvars.Context()
    sa = a.run(t.__enter__)
    sb = b.run(t.__enter__)
    assert sa is sb
    assert sa.entries == 2
    a.run(t.__exit__, None, None, None)
    assert CURRENT not in a
    assert b[CURRENT].scope is sb
    b.run(t.__exit__, None, None, None)
    assert CURRENT not in b


def test_threads_leave_the_var_unset() -> None:
    """8 threads each entering `tm.track('x')` 200 times end with CURRENT unset, entries exact."""
    tm.reset()
    left: list[bool] = []

    def work() -> None:
        for _ in range(200):
            with tm.track("ctx_threads"):
                pass
        left.append(CURRENT in contextvars.copy_context())

    threads = [threading.Thread(target=contextvars.Context().run, args=(work,)) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert left == [False] * 8
    assert tm.report().node("ctx_threads").entries == 1600


def test_entering_from_a_var_set_to_none_sets_it_back_to_none() -> None:
    """Where CURRENT was set to None before the scope, it is None (and still set) after it."""

    def body() -> None:
        CURRENT.set(None)
        with tm.track("ctx_none"):
            pass

    assert _keys_after(body) == ["tokenmeter_frame"]


def test_tasks_leave_the_var_unset() -> None:
    """Inside asyncio tasks, `async with tm.track` leaves the task's context as it found it."""

    async def one() -> bool:
        async with tm.track("ctx_task"):
            await asyncio.sleep(0)
        return CURRENT in contextvars.copy_context()

    async def main() -> list[bool]:
        return list(await asyncio.gather(*(one() for _ in range(4))))

    def body() -> None:
        assert asyncio.run(main()) == [False] * 4

    assert _keys_after(body) == []
