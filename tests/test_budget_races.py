"""Budgets hold while calls are in flight: a reset of a subtree keeps its ancestors' slots."""

from __future__ import annotations

import threading
from typing import Any

import litellm
import pytest

import tokenmeter as tm
from tokenmeter import _litellm

MSGS = [{"role": "user", "content": "hi"}]


def _blocking_call(release: threading.Event, started: threading.Semaphore) -> Any:
    """A wrapped LiteLLM entry point whose calls wait for ``release`` before answering."""

    def provider_call(**kwargs: Any) -> Any:
        started.release()
        release.wait(10)
        return litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")

    return _litellm.wrap_sync(provider_call, "completion")


def test_reset_of_a_subtree_keeps_the_parents_in_flight_slots() -> None:
    """3 calls in flight under parent max_calls=3; resetting the child lets no 4th call start."""
    meter = tm.Meter()
    release = threading.Event()
    started = threading.Semaphore(0)
    call = _blocking_call(release, started)
    refused: list[BaseException] = []
    with meter.track("parent", max_calls=3) as parent, meter.track("child") as child:
        threads = [threading.Thread(target=call, kwargs={"model": "gpt-4o-mini"}) for _ in range(3)]
        for t in threads:
            t.start()
        for _ in range(3):
            assert started.acquire(timeout=10)
        child.reset()
        with pytest.raises(tm.BudgetExceeded) as info:
            call(model="gpt-4o-mini")
        refused.append(info.value)
        release.set()
        for t in threads:
            t.join(10)
    assert str(refused[0]) == ("token budget exceeded in scope 'parent': max_calls=3, spent 3")
    assert (parent.usage.calls, child.usage.calls) == (3, 3)


def test_a_budget_set_while_another_thread_is_inside_holds_for_it() -> None:
    """A thread inside "job" when another entry sets max_calls=3 there gets 3 calls in all."""
    meter = tm.Meter()
    inside = threading.Event()
    budget_set = threading.Event()
    outcomes: list[str] = []

    def worker() -> None:
        with meter.track("job"):
            inside.set()
            budget_set.wait(10)
            for _ in range(10):
                try:
                    litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
                    outcomes.append("ok")
                except tm.BudgetExceeded:
                    outcomes.append("refused")

    t = threading.Thread(target=worker)
    t.start()
    assert inside.wait(10)
    with meter.track("job", max_calls=3):
        budget_set.set()
        t.join(10)
    assert outcomes == ["ok"] * 3 + ["refused"] * 7
    assert meter.report().node("job").usage.calls == 3


async def test_a_budget_set_while_another_task_is_inside_holds_for_it() -> None:
    """A task inside "job" when another task sets max_calls=2 there gets 2 calls in all."""
    import asyncio

    meter = tm.Meter()
    inside = asyncio.Event()
    budget_set = asyncio.Event()
    outcomes: list[str] = []

    async def worker() -> None:
        with meter.track("job"):
            inside.set()
            await budget_set.wait()
            for _ in range(5):
                try:
                    await litellm.acompletion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
                    outcomes.append("ok")
                except tm.BudgetExceeded:
                    outcomes.append("refused")

    task = asyncio.create_task(worker())
    await inside.wait()
    async with meter.track("job", max_calls=2):
        budget_set.set()
        await task
    assert outcomes == ["ok"] * 2 + ["refused"] * 3
    assert meter.report().node("job").usage.calls == 2


def test_a_budget_on_an_ancestor_set_later_holds_below_it() -> None:
    """A thread deep inside job/step when max_calls=1 is set on "job" is held to 1 call."""
    meter = tm.Meter()
    inside = threading.Event()
    budget_set = threading.Event()
    outcomes: list[str] = []

    def worker() -> None:
        with meter.track("job"), meter.track("step"):
            inside.set()
            budget_set.wait(10)
            for _ in range(3):
                try:
                    litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
                    outcomes.append("ok")
                except tm.BudgetExceeded:
                    outcomes.append("refused")

    t = threading.Thread(target=worker)
    t.start()
    assert inside.wait(10)
    with meter.track("job", max_calls=1):
        budget_set.set()
        t.join(10)
    assert outcomes == ["ok", "refused", "refused"]


def test_calls_in_flight_when_a_budget_is_set_count_against_it_once_they_end() -> None:
    """3 calls running in "job" when max_calls=3 is set there: once they end, no 4th starts."""
    meter = tm.Meter()
    release = threading.Event()
    started = threading.Semaphore(0)
    call = _blocking_call(release, started)
    outcomes: list[str] = []
    with meter.track("job"):
        threads = [threading.Thread(target=call, kwargs={"model": "gpt-4o-mini"}) for _ in range(3)]
        for t in threads:
            t.start()
        for _ in range(3):
            assert started.acquire(timeout=10)
    with meter.track("job", max_calls=3) as job:
        release.set()
        for t in threads:
            t.join(10)
        for _ in range(2):
            try:
                litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
                outcomes.append("ok")
            except tm.BudgetExceeded as e:
                outcomes.append(str(e))
    refused = "token budget exceeded in scope 'job': max_calls=3, spent 3"
    assert outcomes == [refused, refused]
    assert job.usage.calls == 3
