"""Runtime budgets: limits checked before each call starts, nested, under threads and tasks."""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading

import litellm
import pytest

import tokenmeter as tm
from tokenmeter import _subtree
from tokenmeter._budgets import before_call
from tokenmeter._scope import current_frame

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def _prices() -> None:
    """A round price: a default call (10 input + 20 output tokens) costs exactly $0.001."""
    tm.set_price(MODEL, input_per_mtok=50, output_per_mtok=25)


def reply(input_tokens: int, output_tokens: int, model: str = MODEL) -> litellm.ModelResponse:
    """A mock LiteLLM response reporting exactly these token counts."""
    return litellm.ModelResponse(
        model=model,
        usage=litellm.Usage(
            prompt_tokens=input_tokens,
            completion_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        ),
    )


def llm_call(
    input_tokens: int = 10, output_tokens: int = 20, delay: float = 0.0, model: str = MODEL
) -> None:
    """One real LiteLLM call (mocked: no network) reporting these token counts."""
    kwargs = {"mock_delay": delay} if delay else {}
    litellm.completion(
        model=model,
        messages=MESSAGES,
        mock_response=reply(input_tokens, output_tokens, model),
        **kwargs,
    )


async def allm_call(input_tokens: int = 10, output_tokens: int = 20) -> None:
    """One real async LiteLLM call (mocked) reporting these token counts."""
    await litellm.acompletion(
        model=MODEL, messages=MESSAGES, mock_response=reply(input_tokens, output_tokens)
    )


# -- the limits themselves ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_calls": -1}, "max_calls must be a non-negative integer or None, got -1"),
        ({"max_calls": True}, "max_calls must be a non-negative integer or None, got True"),
        ({"max_tokens": 1.5}, "max_tokens must be a non-negative integer or None, got 1.5"),
        (
            {"max_cost_usd": -0.5},
            "max_cost_usd must be a non-negative finite number or None, got -0.5",
        ),
        (
            {"max_cost_usd": float("nan")},
            "max_cost_usd must be a non-negative finite number or None, got nan",
        ),
        (
            {"max_cost_usd": float("inf")},
            "max_cost_usd must be a non-negative finite number or None, got inf",
        ),
        (
            {"max_calls": 1, "on_exceed": "ignore"},
            "on_exceed must be 'raise', 'warn' or a callable, got 'ignore'",
        ),
    ],
)
def test_bad_limits_raise_value_error_naming_the_field(
    kwargs: dict[str, object], message: str
) -> None:
    """A bad limit raises ValueError naming the field, when track() is called."""
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        tm.track("x", **kwargs)  # type: ignore[arg-type]


# -- refusing the next call --------------------------------------------------------------


def test_max_calls_refuses_the_call_after_the_limit() -> None:
    """With max_calls=3 three calls run; the fourth raises before it starts and is not recorded."""
    with tm.track("planner", max_calls=3):
        for _ in range(3):
            llm_call()
        with pytest.raises(tm.BudgetExceeded) as info:
            llm_call()
    e = info.value
    assert (e.path, e.kind, e.limit, e.spent) == (("planner",), "max_calls", 3, 3)
    assert str(e) == "token budget exceeded in scope 'planner': max_calls=3, spent 3"
    assert tm.report().total.calls == 3


def test_max_tokens_message_names_path_limit_and_spent() -> None:
    """A token budget names the full scope path, the limit and the exact tokens spent."""
    with tm.track("agent"), tm.track("planner", max_tokens=1_000):
        llm_call(400, 300)
        llm_call(200, 150)  # 1,050 tokens: this call started at 700 < 1,000
        with pytest.raises(tm.BudgetExceeded) as info:
            llm_call()
    e = info.value
    assert (e.path, e.kind, e.limit, e.spent) == (("agent", "planner"), "max_tokens", 1000, 1050)
    assert str(e) == (
        "token budget exceeded in scope 'agent/planner': max_tokens=1,000, spent 1,050"
    )


def test_max_cost_message_names_exact_dollars() -> None:
    """A cost budget reports the exact dollars spent, summed without float drift."""
    with tm.track("critic", max_cost_usd=0.003):
        for _ in range(3):
            llm_call()  # $0.001 each
        with pytest.raises(tm.BudgetExceeded) as info:
            llm_call()
    e = info.value
    assert (e.path, e.kind, e.limit, e.spent) == (("critic",), "max_cost_usd", 0.003, 0.003)
    assert str(e) == (
        "token budget exceeded in scope 'critic': max_cost_usd=$0.003000, spent $0.003000"
    )


def test_budget_exceeded_survives_pickling() -> None:
    """BudgetExceeded pickles with its attributes (it crosses process boundaries in xdist)."""
    e = tm.BudgetExceeded(("a", "b"), "max_tokens", 100, 120)
    back = pickle.loads(pickle.dumps(e))
    assert (back.path, back.kind, back.limit, back.spent, str(back)) == (
        ("a", "b"),
        "max_tokens",
        100,
        120,
        "token budget exceeded in scope 'a/b': max_tokens=100, spent 120",
    )


def test_zero_limit_refuses_the_first_call() -> None:
    """max_calls=0 refuses every call."""
    with tm.track("off", max_calls=0), pytest.raises(tm.BudgetExceeded) as info:
        llm_call()
    assert (info.value.kind, info.value.limit, info.value.spent) == ("max_calls", 0, 0)
    assert tm.report().total.calls == 0


def test_unpriced_calls_do_not_count_toward_a_cost_budget() -> None:
    """A call with no known price adds no dollars: only max_tokens/max_calls can bound it."""
    with tm.track("s", max_cost_usd=0.001):
        for _ in range(5):
            llm_call(model="openai/my-local-model")  # no known price
        llm_call()
        with pytest.raises(tm.BudgetExceeded) as info:
            llm_call(model="openai/my-local-model")
    assert (info.value.kind, info.value.spent) == ("max_cost_usd", 0.001)
    assert tm.report().total.unpriced_calls == 5


# -- nesting -----------------------------------------------------------------------------


def test_nested_budgets_all_hold_child_spend_counts_against_parent() -> None:
    """A child's calls count against its parent's budget; the parent refuses the child's call."""
    with tm.track("pipeline", max_calls=3):
        with tm.track("planner", max_calls=10):
            llm_call()
            llm_call()
        with tm.track("writer"):
            llm_call()
        with tm.track("planner", max_calls=10), pytest.raises(tm.BudgetExceeded) as info:
            llm_call()
    e = info.value
    assert (e.path, e.kind, e.limit, e.spent) == (("pipeline",), "max_calls", 3, 3)
    assert tm.report().node("pipeline", "planner").usage.calls == 2


def test_nested_child_budget_refuses_while_parent_has_room() -> None:
    """A child's own budget refuses its call even though the parent's budget has room."""
    with tm.track("pipeline", max_tokens=10_000), tm.track("planner", max_tokens=50):
        llm_call(30, 30)
        with pytest.raises(tm.BudgetExceeded) as info:
            llm_call()
    assert (info.value.path, info.value.spent) == (("pipeline", "planner"), 60)


def test_budget_counts_every_entry_of_the_node() -> None:
    """A budget belongs to the node: a loop re-entering it shares one tally across turns."""
    turns_done = 0

    def loop() -> None:
        nonlocal turns_done
        for _ in range(10):
            with tm.track("sample", max_calls=5):
                llm_call()
                llm_call()
            turns_done += 1

    with pytest.raises(tm.BudgetExceeded) as info:
        loop()
    assert turns_done == 2
    assert (info.value.spent, tm.report().node("sample").entries) == (5, 3)
    assert tm.report().node("sample").usage.calls == 5


def test_budget_counts_usage_recorded_before_it_was_set() -> None:
    """A budget set on a node's later entry counts what the node had already spent."""
    with tm.track("s"):
        llm_call(500, 500)
    with tm.track("s", max_tokens=1_000), pytest.raises(tm.BudgetExceeded) as info:
        llm_call()
    assert info.value.spent == 1000


def test_reset_zeroes_the_budget_tally() -> None:
    """After tm.reset() a node entered with its budget again counts from zero."""
    with tm.track("s", max_calls=1):
        llm_call()
    tm.reset()
    with tm.track("s", max_calls=1):
        llm_call()
        with pytest.raises(tm.BudgetExceeded):
            llm_call()
    assert tm.report().total.calls == 1


def test_reset_forgets_budgets_so_test_order_does_not_matter() -> None:
    """A node entered without limits after tm.reset() has no budget left from before."""
    with tm.track("agent", max_calls=1):
        llm_call()
    tm.reset()
    with tm.track("agent"):
        llm_call()
        llm_call()
    assert tm.report().node("agent").usage.calls == 2


def test_reentering_without_limits_keeps_the_nodes_budget() -> None:
    """Until a reset, a node keeps its budget for entries that set no limits."""
    with tm.track("agent", max_calls=2):
        llm_call()
    with tm.track("agent"):
        llm_call()
        with pytest.raises(tm.BudgetExceeded) as info:
            llm_call()
    assert info.value.spent == 2


def test_raise_budget_wins_over_an_exceeded_warn_budget() -> None:
    """When a warn budget and a raise budget are both reached, the call is refused."""
    with tm.track("outer", max_calls=1, on_exceed="warn"), tm.track("inner", max_calls=1):
        llm_call()
        with pytest.raises(tm.BudgetExceeded) as info:
            llm_call()
    assert info.value.path == ("outer", "inner")
    assert tm.report().total.calls == 1


# -- warn and callables ------------------------------------------------------------------


def test_warn_logs_and_the_call_goes_ahead(caplog: pytest.LogCaptureFixture) -> None:
    """on_exceed='warn' logs a warning on the 'tokenmeter' logger for each call past the limit."""
    caplog.set_level(logging.WARNING, logger="tokenmeter")
    with tm.track("s", max_calls=2, on_exceed="warn"):
        for _ in range(4):
            llm_call()
    assert tm.report().total.calls == 4
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "tokenmeter",
            "WARNING",
            "token budget exceeded in scope 's': max_calls=2, spent 2 "
            "(on_exceed='warn': the call goes ahead)",
        ),
        (
            "tokenmeter",
            "WARNING",
            "token budget exceeded in scope 's': max_calls=2, spent 3 "
            "(on_exceed='warn': the call goes ahead)",
        ),
    ]


def test_callable_is_called_with_the_exception_and_the_call_goes_ahead() -> None:
    """A callable on_exceed receives the BudgetExceeded; when it returns, the call goes ahead."""
    seen: list[tm.BudgetExceeded] = []
    with tm.track("s", max_tokens=100, on_exceed=seen.append):
        llm_call(60, 60)
        llm_call(1, 1)
        llm_call(1, 1)
    assert [(e.path, e.kind, e.limit, e.spent) for e in seen] == [
        (("s",), "max_tokens", 100, 120),
        (("s",), "max_tokens", 100, 122),
    ]
    assert tm.report().total.calls == 3


def test_callable_that_raises_refuses_the_call_and_gives_its_slot_back() -> None:
    """A callable that raises stops the call with its own exception; no call slot is used up."""
    switched: list[str] = []

    def use_cheaper_model(exc: tm.BudgetExceeded) -> None:
        switched.append(exc.kind)
        raise LookupError("switch to the cheap model")

    with tm.track("s", max_calls=5):
        with tm.track("expensive", max_calls=1, on_exceed=use_cheaper_model):
            llm_call()
            with pytest.raises(LookupError, match="switch to the cheap model"):
                llm_call()
        with tm.track("cheap"):
            for _ in range(4):
                llm_call()  # the refused call gave its slot back: 1 + 4 = 5 started
            with pytest.raises(tm.BudgetExceeded) as info:
                llm_call()
    assert switched == ["max_calls"]
    assert (info.value.path, info.value.spent) == (("s",), 5)


# -- manual records ----------------------------------------------------------------------


def test_manual_record_counts_against_the_budget_and_never_raises() -> None:
    """tm.record() past the limit records (the call happened); the next LLM call is refused."""
    with tm.track("s", max_tokens=100):
        tm.record(model=MODEL, input_tokens=80, output_tokens=40)
        tm.record(model=MODEL, input_tokens=80, output_tokens=40)
        with pytest.raises(tm.BudgetExceeded) as info:
            llm_call()
    assert (info.value.kind, info.value.spent) == ("max_tokens", 240)
    assert tm.report().total.calls == 2


def test_manual_records_count_as_calls_for_max_calls() -> None:
    """Each manual record uses one of max_calls."""
    with tm.track("s", max_calls=3):
        tm.record(model=MODEL, input_tokens=1, output_tokens=1)
        tm.record(model=MODEL, input_tokens=1, output_tokens=1)
        llm_call()
        with pytest.raises(tm.BudgetExceeded) as info:
            llm_call()
    assert info.value.spent == 3


# -- @tracked ----------------------------------------------------------------------------


def test_tracked_function_budget_spans_its_calls() -> None:
    """A budget on @tracked counts every call of the function (one node)."""

    @tm.tracked("summarize", max_calls=3)
    def summarize(n: int) -> None:
        for _ in range(n):
            llm_call()

    summarize(2)
    with pytest.raises(tm.BudgetExceeded) as info:
        summarize(2)
    assert (info.value.path, info.value.spent) == (("summarize",), 3)
    assert tm.report().node("summarize").entries == 2


async def test_tracked_coroutine_budget() -> None:
    """A budget on an async @tracked function refuses the call past its limit."""

    @tm.tracked(max_tokens=50)
    async def critique() -> None:
        await allm_call(20, 20)
        await allm_call(20, 20)  # starts at 40 < 50
        await allm_call(20, 20)  # would start at 80: refused

    with pytest.raises(tm.BudgetExceeded) as info:
        await critique()
    e = info.value
    assert (e.path, e.kind, e.spent) == (
        ("test_tracked_coroutine_budget.<locals>.critique",),
        "max_tokens",
        80,
    )


# -- concurrency -------------------------------------------------------------------------


def test_max_calls_exact_under_50_threads() -> None:
    """50 threads race for 37 call slots: exactly 37 calls start, every other call is refused."""
    refused = []
    barrier = threading.Barrier(50)

    def worker() -> None:
        barrier.wait()
        for _ in range(5):
            try:
                llm_call(delay=0.002)
            except tm.BudgetExceeded as e:
                refused.append(e.spent)

    with tm.track("crowd", max_calls=37) as scope:
        threads = [threading.Thread(target=worker) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert scope.usage.calls == 37
    assert len(refused) == 50 * 5 - 37
    assert set(refused) == {37}


async def test_max_calls_exact_under_50_tasks() -> None:
    """50 asyncio tasks race for 37 call slots: exactly 37 calls start."""
    refused = 0

    async def worker() -> None:
        nonlocal refused
        for _ in range(5):
            try:
                await allm_call()
            except tm.BudgetExceeded:
                refused += 1

    async with tm.track("crowd", max_calls=37) as scope:
        await asyncio.gather(*(worker() for _ in range(50)))
    assert scope.usage.calls == 37
    assert refused == 50 * 5 - 37


def test_token_overshoot_is_at_most_one_call_per_sequential_worker() -> None:
    """One worker: each call starts under the limit, so the overshoot is below one call."""
    calls = 0

    def loop() -> None:
        nonlocal calls
        for _ in range(100):
            llm_call(200, 100)
            calls += 1

    with tm.track("s", max_tokens=1_000) as scope, pytest.raises(tm.BudgetExceeded):
        loop()
    assert calls == 4
    assert scope.usage.total_tokens == 1_200  # calls started at 0, 300, 600 and 900


def test_token_overshoot_worst_case_is_one_in_flight_call_per_worker() -> None:
    """50 threads that all start before any finishes: all 50 go (spent was 0), none after."""
    started = threading.Barrier(50)

    def worker() -> None:
        # What the LiteLLM hook does around a call, with all 50 calls held in flight:
        # the budget check before the call starts, the record after it returns.
        frame = current_frame()
        before_call(frame)
        started.wait()  # every call is now in flight: none has reported its tokens
        rec = tm.CallRecord(model=MODEL, input_tokens=70, output_tokens=30, cost_usd=0.0)
        _subtree.add_record(frame.scope.meter, frame, rec, reserved=True)

    with tm.track("s", max_tokens=1_000) as scope:
        threads = [threading.Thread(target=worker) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with pytest.raises(tm.BudgetExceeded) as info:
            llm_call()
    # The bound: limit + one call per concurrent worker (50 x 100 tokens).
    assert scope.usage.total_tokens == 5_000
    assert info.value.spent == 5_000


def test_token_overshoot_bound_holds_under_50_racing_threads() -> None:
    """50 threads call until refused: the total lands in [limit, limit + 50 calls)."""
    per_call = 7
    limit = 200

    def worker() -> None:
        while True:
            try:
                llm_call(4, 3, delay=0.001)
            except tm.BudgetExceeded:
                return

    with tm.track("s", max_tokens=limit) as scope:
        threads = [threading.Thread(target=worker) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    spent = scope.usage.total_tokens
    assert limit <= spent < limit + 50 * per_call
    assert spent % per_call == 0


async def test_cost_overshoot_bound_holds_under_50_tasks() -> None:
    """50 tasks call until refused: the cost lands in [limit, limit + 50 calls)."""

    async def worker() -> None:
        while True:
            try:
                await allm_call()  # $0.001
            except tm.BudgetExceeded:
                return

    async with tm.track("s", max_cost_usd=0.01) as scope:
        await asyncio.gather(*(worker() for _ in range(50)))
    u = scope.usage
    assert 0.01 <= u.cost_usd < 0.01 + 50 * 0.001
    assert u.cost_usd == u.calls / 1000


def test_threads_started_in_a_scope_count_against_its_budget() -> None:
    """A thread started inside a budgeted scope spends from that scope's budget."""
    errors: list[tm.BudgetExceeded] = []

    def worker() -> None:
        try:
            llm_call()
        except tm.BudgetExceeded as e:
            errors.append(e)

    with tm.track("s", max_calls=2):
        llm_call()
        llm_call()
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert [(e.path, e.spent) for e in errors] == [(("s",), 2)]
