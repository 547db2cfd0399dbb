"""@tm.tracked on sync functions, coroutines, generators and async generators."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import tokenmeter as tm
from tokenmeter._meter import DEFAULT_METER

ONE = {"model": "m", "input_tokens": 3, "output_tokens": 2, "cost_usd": 0.01}


@tm.tracked
def plan(goal: str, *, steps: int = 3) -> tuple[str, tm.Scope]:
    """Plan a goal."""
    tm.record(**ONE)
    return f"{goal}:{steps}", tm.current()


@tm.tracked("critic")
async def critique(text: str) -> tm.Scope:
    await asyncio.sleep(0)
    tm.record(**ONE)
    return tm.current()


@tm.tracked(module="persona_formulation", operation="formulate_prompt")
def formulate() -> tm.CallRecord:
    return tm.record(**ONE)


@tm.tracked()
def empty_parens() -> tm.Scope:
    return tm.current()


class Agent:
    @tm.tracked
    def step(self) -> tm.Scope:
        return tm.current()


def test_bare_decorator_names_scope_after_qualname() -> None:
    """@tracked on a sync function: scope 'plan', args and return value pass through."""
    result, scope = plan("ship", steps=5)
    assert result == "ship:5"
    assert scope.path == ("plan",)
    assert tm.current() is DEFAULT_METER.root
    rep = tm.report()
    assert rep.node("plan").entries == 1
    assert rep.node("plan").usage.calls == 1


def test_qualname_of_methods_and_parens() -> None:
    """A method's scope is 'Agent.step'; @tracked() with no name also uses the qualname."""
    assert Agent().step().name == "Agent.step"
    assert empty_parens().name == "empty_parens"


def test_nested_function_qualname() -> None:
    """A function defined in a test is named by its full __qualname__ (with <locals>)."""

    @tm.tracked
    def inner() -> tm.Scope:
        return tm.current()

    assert inner().name == "test_nested_function_qualname.<locals>.inner"


async def test_named_coroutine() -> None:
    """@tracked('critic') on async def: the scope is active across the awaits of the body."""
    scope = await critique("x")
    assert scope.path == ("critic",)
    assert tm.current() is DEFAULT_METER.root
    assert inspect.iscoroutinefunction(critique)
    assert tm.report().node("critic").usage.calls == 1


def test_module_and_operation_form() -> None:
    """@tracked(module=, operation=) sets both dimensions on calls inside."""
    rec = formulate()
    assert (rec.module, rec.operation, rec.path) == (
        "persona_formulation",
        "formulate_prompt",
        ("formulate",),
    )
    assert list(tm.report().by_module()) == ["persona_formulation"]


def test_signature_and_metadata_preserved() -> None:
    """The wrapper keeps the signature, __name__, __qualname__, __doc__ and __wrapped__."""
    assert (
        str(inspect.signature(plan))
        == "(goal: 'str', *, steps: 'int' = 3) -> 'tuple[str, tm.Scope]'"
    )
    assert plan.__name__ == "plan"
    assert plan.__qualname__ == "plan"
    assert plan.__doc__ == "Plan a goal."
    assert hasattr(plan, "__wrapped__")
    assert str(inspect.signature(critique)) == "(text: 'str') -> 'tm.Scope'"


def test_each_call_is_one_entry_and_recursion_nests() -> None:
    """Three calls are entries == 3; a recursive function nests f/f/f."""
    for _ in range(3):
        plan("x")
    assert tm.report().node("plan").entries == 3

    @tm.tracked("f")
    def f(n: int) -> tuple[str, ...]:
        return tm.current().path if n == 0 else f(n - 1)

    assert f(2) == ("f", "f", "f")


def test_exception_propagates_and_restores() -> None:
    """An exception from a tracked function propagates; the scope is left and usage kept."""

    @tm.tracked("boom")
    def boom() -> None:
        tm.record(**ONE)
        raise KeyError("x")

    with pytest.raises(KeyError):
        boom()
    assert tm.current() is DEFAULT_METER.root
    assert tm.report().node("boom").usage.calls == 1


def test_tracked_with_a_meter() -> None:
    """@tracked(meter=m) enters a scope of m, not of the default meter."""
    meter = tm.Meter()

    @tm.tracked("job", meter=meter)
    def job() -> tm.Scope:
        tm.record(**ONE)
        return tm.current()

    assert job().meter is meter
    assert meter.report().node("job").usage.calls == 1
    assert tm.report().total.calls == 0


def test_track_object_as_decorator() -> None:
    """tm.track('x') used as a decorator enters x on each call, sync and async."""

    @tm.track("x")
    def f() -> tm.Scope:
        return tm.current()

    @tm.track("y")
    async def g() -> tm.Scope:
        await asyncio.sleep(0)
        return tm.current()

    assert f().path == ("x",)
    assert asyncio.run(g()).path == ("y",)
    assert tm.report().node("x").entries == 1
    assert tm.report().node("y").entries == 1


def test_tracked_rejects_bad_names() -> None:
    """@tracked('') raises ValueError; tracked(3) too."""
    with pytest.raises(ValueError, match="scope name"):
        tm.tracked("")
    with pytest.raises(ValueError, match="scope name"):
        tm.tracked(3)  # type: ignore[call-overload]


# -- generators --------------------------------------------------------------------------


@tm.tracked("gen")
def numbers(n: int) -> Iterator[tuple[int, tuple[str, ...]]]:
    for i in range(n):
        tm.record(**ONE)
        yield i, tm.current().path


def test_generator_scope_active_only_in_body() -> None:
    """Inside the generator body current() is gen; in the consumer loop it is the consumer's."""
    seen_in_consumer = []
    with tm.track("consumer") as consumer:
        items = list(numbers(0))
        assert items == []
        for i, path in numbers(3):
            assert path == ("consumer", "gen")
            seen_in_consumer.append(tm.current())
            tm.record(**ONE)
            assert i in (0, 1, 2)
    assert seen_in_consumer == [consumer, consumer, consumer]
    rep = tm.report()
    assert rep.node("consumer").self_usage.calls == 3
    assert rep.node("consumer", "gen").usage.calls == 3
    assert rep.node("consumer", "gen").entries == 2
    assert inspect.isgeneratorfunction(numbers)


def test_generator_send_throw_close_and_return() -> None:
    """send, throw and close reach the body (which sees its scope); the return value comes back."""
    log: list[Any] = []

    @tm.tracked("echo")
    def echo() -> Iterator[Any]:
        try:
            received = yield "ready"
            while True:
                try:
                    received = yield ("got", received, tm.current().name)
                except ValueError as e:
                    log.append(("caught", str(e), tm.current().name))
                    received = yield "recovered"
                if received == "stop":
                    return "done"
        finally:
            log.append(("finally", tm.current().name))

    g = echo()
    assert next(g) == "ready"
    assert g.send(1) == ("got", 1, "echo")
    assert g.throw(ValueError("bad")) == "recovered"
    assert log == [("caught", "bad", "echo")]
    with pytest.raises(StopIteration) as stop:
        g.send("stop")
    assert stop.value.value == "done"
    assert log[-1] == ("finally", "echo")

    g2 = echo()
    next(g2)
    g2.close()
    assert log[-1] == ("finally", "echo")
    assert tm.current() is DEFAULT_METER.root
    assert tm.report().node("echo").entries == 2


def test_generator_uncaught_throw_propagates() -> None:
    """A thrown exception the body does not catch comes out of throw() unchanged."""
    g = numbers(5)
    next(g)
    with pytest.raises(RuntimeError, match="stop"):
        g.throw(RuntimeError("stop"))
    assert tm.current() is DEFAULT_METER.root


def test_yield_from_gets_the_return_value() -> None:
    """`yield from` a tracked generator delivers its items and its return value."""

    @tm.tracked("sub")
    def sub() -> Iterator[int]:
        yield 1
        yield 2
        return 3

    def outer() -> Iterator[int]:
        result = yield from sub()
        yield result * 10

    assert list(outer()) == [1, 2, 30]


def test_nested_track_inside_generator_across_yields() -> None:
    """A `with tm.track('inner')` spanning yields is active in the body, not in the consumer."""

    @tm.tracked("gen")
    def body() -> Iterator[tuple[str, ...]]:
        with tm.track("inner"):
            yield tm.current().path
            tm.record(**ONE)
            yield tm.current().path
        yield tm.current().path

    with tm.track("c") as c:
        out = []
        for p in body():
            out.append(p)
            assert tm.current() is c
            tm.record(**ONE)
    assert out == [("c", "gen", "inner"), ("c", "gen", "inner"), ("c", "gen")]
    rep = tm.report()
    assert rep.node("c").self_usage.calls == 3
    assert rep.node("c", "gen", "inner").self_usage.calls == 1
    assert rep.node("c", "gen", "inner").entries == 1


def test_two_generators_interleaved() -> None:
    """Two tracked generators advanced in turn each keep their own scope."""
    a, b = numbers(2), numbers(2)
    with tm.track("x"):
        pa = next(a)[1]
    with tm.track("y"):
        pb = next(b)[1]
    assert next(a)[1] == pa == ("x", "gen")
    assert next(b)[1] == pb == ("y", "gen")


# -- async generators --------------------------------------------------------------------


@tm.tracked("agen")
async def stream(n: int) -> AsyncIterator[tuple[int, tuple[str, ...]]]:
    for i in range(n):
        await asyncio.sleep(0)
        tm.record(**ONE)
        yield i, tm.current().path


async def test_async_generator_scope_active_only_in_body() -> None:
    """Inside an async generator body current() is agen; in the `async for` it is the consumer's."""
    async with tm.track("consumer") as consumer:
        paths = []
        async for _, path in stream(3):
            paths.append(path)
            assert tm.current() is consumer
            tm.record(**ONE)
    assert paths == [("consumer", "agen")] * 3
    rep = tm.report()
    assert rep.node("consumer").self_usage.calls == 3
    assert rep.node("consumer", "agen").usage.calls == 3
    assert rep.node("consumer", "agen").entries == 1
    assert inspect.isasyncgenfunction(stream)


async def test_async_generator_asend_athrow_aclose() -> None:
    """asend, athrow and aclose reach the async generator body, which sees its scope."""
    log: list[Any] = []

    @tm.tracked("aecho")
    async def aecho() -> AsyncIterator[Any]:
        try:
            received = yield "ready"
            while True:
                try:
                    received = yield ("got", received, tm.current().name)
                except ValueError:
                    log.append(("caught", tm.current().name))
                    received = yield "recovered"
        finally:
            await asyncio.sleep(0)
            log.append(("finally", tm.current().name))

    g = aecho()
    assert await g.asend(None) == "ready"
    assert await g.asend(7) == ("got", 7, "aecho")
    assert await g.athrow(ValueError("bad")) == "recovered"
    await g.aclose()
    assert log == [("caught", "aecho"), ("finally", "aecho")]
    assert tm.current() is DEFAULT_METER.root


async def test_nested_track_inside_async_generator_across_yields() -> None:
    """An `async with tm.track('inner')` spanning yields stays inside the async generator body."""

    @tm.tracked("agen")
    async def body() -> AsyncIterator[tuple[str, ...]]:
        async with tm.track("inner"):
            yield tm.current().path
            yield tm.current().path
        yield tm.current().path

    async with tm.track("c") as c:
        out = []
        async for p in body():
            out.append(p)
            assert tm.current() is c
    assert out == [("c", "agen", "inner"), ("c", "agen", "inner"), ("c", "agen")]


async def test_async_generator_break_then_aclose() -> None:
    """Breaking out of `async for` and closing runs the body's cleanup inside its scope."""
    cleaned: list[str] = []

    @tm.tracked("agen2")
    async def body() -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            cleaned.append(tm.current().name)

    g = body()
    async for i in g:
        if i == 1:
            break
    await g.aclose()
    assert cleaned == ["agen2"]
    assert tm.current() is DEFAULT_METER.root
