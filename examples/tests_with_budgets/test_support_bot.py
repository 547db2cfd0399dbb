"""The support bot's token and cost budgets, checked by the tokenmeter pytest plugin."""

from __future__ import annotations

import asyncio

import pytest
from support_bot import answer

import tokenmeter as tm


@pytest.mark.token_budget(max_calls=2, max_tokens=1_000)
def test_one_answer_is_two_calls(tokenmeter: tm.Scope) -> None:
    """An answer makes one plan call and one reply call; the fixture is this test's scope."""
    assert answer("How do I reset my password?") == "See Settings > Security."
    assert tokenmeter.usage.calls == 2
    assert tokenmeter.usage.total_tokens == 610
    report = tokenmeter.report()
    assert report.node("support_bot", "planner").usage.total_tokens == 160
    assert report.node("support_bot", "writer").usage.cost_usd == 0.000135


@pytest.mark.token_budget(scope="support_bot/planner", max_cost_usd=0.0001)
def test_planning_stays_cheap() -> None:
    """The planner scope inside this test may spend at most $0.0001 ($0.000042 here)."""
    answer("Where is my invoice?")


@pytest.mark.token_budget(max_calls=4, max_cost_usd=0.001)
async def test_concurrent_answers(tokenmeter: tm.Scope) -> None:
    """Answers run in worker threads still land on the test's scope."""
    await asyncio.gather(asyncio.to_thread(answer, "a"), asyncio.to_thread(answer, "b"))
    assert tokenmeter.usage.calls == 4


def test_runtime_budget_refuses_a_call() -> None:
    """A budget in the code under test: the call past it is refused before it starts."""
    with tm.track("batch", max_calls=3) as batch:
        answer("first")
        with pytest.raises(tm.BudgetExceeded) as info:
            answer("second")  # the plan is the 3rd call; the reply would be the 4th
    assert (info.value.kind, info.value.limit, info.value.spent) == ("max_calls", 3, 3)
    assert batch.usage.calls == 3
