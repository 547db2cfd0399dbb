"""The support bot's token and cost budgets, checked by the tokenmeter pytest plugin."""

from __future__ import annotations

import asyncio

import pytest
from support_bot import answer

import tokenmeter as tm
import tokenmeter.testing


@pytest.mark.token_budget(max_calls=2, max_tokens=1_000)
def test_one_answer_is_two_calls(tokenmeter_scope: tm.Scope) -> None:
    """An answer makes one plan call and one reply call; the fixture is this test's scope."""
    assert answer("How do I reset my password?") == "See Settings > Security."
    assert tokenmeter_scope.usage.calls == 2
    assert tokenmeter_scope.usage.total_tokens == 610
    report = tokenmeter_scope.report()
    assert report.node("support_bot", "planner").usage.total_tokens == 160
    assert report.node("support_bot", "writer").usage.cost_usd == 0.000135


@pytest.mark.token_budget(scope="support_bot/planner", max_cost_usd=0.0001)
def test_planning_stays_cheap() -> None:
    """The planner scope inside this test may spend at most $0.0001 ($0.000042 here)."""
    answer("Where is my invoice?")


@pytest.mark.token_budget(max_calls=4, max_cost_usd=0.001)
async def test_concurrent_answers(tokenmeter_scope: tm.Scope) -> None:
    """Answers run in worker threads still land on the test's scope."""
    await asyncio.gather(asyncio.to_thread(answer, "a"), asyncio.to_thread(answer, "b"))
    assert tokenmeter_scope.usage.calls == 4


def test_runtime_budget_refuses_a_call() -> None:
    """A budget in the code under test: the call past it is refused before it starts."""
    with tm.track("batch", max_calls=3) as batch:
        answer("first")
        with pytest.raises(tm.BudgetExceeded) as info:
            answer("second")  # the plan is the 3rd call; the reply would be the 4th
    assert (info.value.kind, info.value.limit, info.value.spent) == ("max_calls", 3, 3)
    assert batch.usage.calls == 3


def test_an_isolated_meter_sees_only_its_block() -> None:
    """tokenmeter.testing.isolated_meter(): the calls of the block, in a meter of their own."""
    with tokenmeter.testing.isolated_meter() as meter:
        answer("Where is my invoice?")
    report = meter.report()
    assert report.node("support_bot").usage.calls == 2
    assert report.node("support_bot", "writer").usage.total_tokens == 450
    assert [r.model for r in meter.records()] == ["gpt-4o-mini", "gpt-4o-mini"]
