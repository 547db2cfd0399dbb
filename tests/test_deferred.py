"""Plain LiteLLM responses are queued and counted in batches, with the general path's numbers."""

from __future__ import annotations

import time
from typing import Any

import litellm
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litellm import ModelResponse, Usage

import tokenmeter as tm
from tokenmeter import _litellm, _tree
from tokenmeter._frame import Frame
from tokenmeter._scope import CURRENT

MSGS = [{"role": "user", "content": "hi"}]


def response(
    usage: Usage | None,
    cost: Any = 1.5e-5,
    model: str = "gpt-4o-mini",
    provider: str | None = "openai",
    **hidden: Any,
) -> ModelResponse:
    """A ModelResponse as LiteLLM returns it: this usage, these hidden parameters."""
    resp = ModelResponse(model=model, choices=[{"message": {"role": "assistant", "content": "ok"}}])
    if usage is not None:
        resp.usage = usage
    else:
        resp.__pydantic_extra__.pop("usage", None)
    resp._hidden_params = {
        "litellm_model_name": model,
        "custom_llm_provider": provider,
        "response_cost": cost,
        **hidden,
    }
    return resp


def frame_of(meter: tm.Meter, name: str, module: str | None = None) -> Frame:
    with meter.track(name, module=module):
        frame = CURRENT.get()
    assert frame is not None
    return frame


def general(frame: Frame, resp: ModelResponse) -> None:
    _litellm.record_result(frame, "completion", resp, (), {"messages": MSGS}, 0.0, None)


def queued_or_general(frame: Frame, resp: ModelResponse) -> bool:
    """What the wrapper does with a response: queue it, or record it at once. True if queued."""
    if _litellm.deferred.defer(frame, resp, time.perf_counter()):
        return True
    general(frame, resp)
    return False


def seen(frame: Frame, model: str = "gpt-4o-mini") -> None:
    """Record one call of ``model`` on ``frame``'s scope the general way, then take it away.

    The first call of a model on a scope is recorded at once (and files the tally
    that later calls are queued for); the tests start from an empty tally.
    """
    general(frame, response(Usage(prompt_tokens=0, completion_tokens=0), model=model))
    with frame.scope.meter._lock:
        for acc in frame.scope._dims.values():
            acc[:] = [0] * len(acc)


def tallies(meter: tm.Meter) -> dict[tuple[str, ...], dict[Any, list[int]]]:
    with meter._lock:
        _tree.settle_locked(meter)
        return {
            s.path: {k: list(v) for k, v in s._dims.items() if any(v)} for s in meter.root.walk()
        }


# -- the numbers are the general path's -----------------------------------------------------

counts = st.integers(min_value=0, max_value=10**7)
maybe = st.one_of(st.none(), counts)
usages = st.builds(
    dict,
    prompt_tokens=counts,
    completion_tokens=counts,
    prompt_tokens_details=st.one_of(
        st.none(),
        st.fixed_dictionaries({"cached_tokens": maybe}, optional={"cache_creation_tokens": maybe}),
    ),
    completion_tokens_details=st.one_of(
        st.none(), st.fixed_dictionaries({"reasoning_tokens": maybe})
    ),
    anthropic=st.one_of(st.none(), st.fixed_dictionaries({"cache_read_input_tokens": counts})),
)
costs = st.one_of(
    st.floats(min_value=1e-9, max_value=50.0),
    st.sampled_from([0.0, None]),
)
calls = st.tuples(
    usages,
    costs,
    st.sampled_from(["gpt-4o-mini", "gpt-4o", "no-such-model-xyz"]),
    st.integers(min_value=0, max_value=2),  # which scope
)


def has_tokens(spec: dict[str, Any]) -> bool:
    """Whether a usage spec has tokens (one without is estimated by the general path)."""
    return bool(spec["prompt_tokens"] or spec["completion_tokens"])


def build_usage(spec: dict[str, Any]) -> Usage:
    kwargs: dict[str, Any] = {
        "prompt_tokens": spec["prompt_tokens"],
        "completion_tokens": spec["completion_tokens"],
    }
    if spec["prompt_tokens_details"] is not None:
        kwargs["prompt_tokens_details"] = spec["prompt_tokens_details"]
    if spec["completion_tokens_details"] is not None:
        kwargs["completion_tokens_details"] = spec["completion_tokens_details"]
    if spec["anthropic"] is not None:
        kwargs.update(spec["anthropic"])
    return Usage(**kwargs)


@settings(max_examples=60, deadline=None)
@given(st.lists(calls, min_size=1, max_size=40))
def test_batches_count_what_the_general_path_counts(batch: list[Any]) -> None:
    """Any mix of usages, costs, models and scopes: queued then counted equals one by one."""
    one_by_one, queued = tm.Meter(), tm.Meter()
    names = ["a", "b", "c"]
    frames_a = [frame_of(one_by_one, n) for n in names]
    frames_b = [frame_of(queued, n) for n in names]
    for spec, cost, model, where in batch:
        resp = response(build_usage(spec), cost, model)
        general(frames_a[where], resp)
        queued_or_general(frames_b[where], resp)
    assert tallies(queued) == tallies(one_by_one)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(usages, costs), min_size=1, max_size=40))
def test_a_run_on_one_scope_and_model_counts_what_the_general_path_counts(
    run: list[Any],
) -> None:
    """One scope, one model, any usages and costs: the batch sums equal one-by-one records."""
    one_by_one, queued = tm.Meter(), tm.Meter()
    frame_a, frame_b = frame_of(one_by_one, "a"), frame_of(queued, "a")
    seen(frame_b)
    for spec, cost in run:
        resp = response(build_usage(spec), cost)
        general(frame_a, resp)
        assert queued_or_general(frame_b, resp) == has_tokens(spec)
    assert tallies(queued) == tallies(one_by_one)


detailed = st.builds(
    dict,
    prompt_tokens=counts,
    completion_tokens=counts,
    prompt_tokens_details=st.fixed_dictionaries(
        {"cached_tokens": maybe}, optional={"cache_creation_tokens": maybe}
    ),
    completion_tokens_details=st.fixed_dictionaries({"reasoning_tokens": maybe}),
    anthropic=st.none(),
)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(detailed, st.floats(min_value=1e-9, max_value=50.0)), min_size=4, max_size=40
    )
)
def test_a_run_with_token_details_counts_what_the_general_path_counts(run: list[Any]) -> None:
    """Cached and reasoning parts on every response, within their totals or not: same numbers."""
    one_by_one, queued = tm.Meter(), tm.Meter()
    frame_a, frame_b = frame_of(one_by_one, "a"), frame_of(queued, "a")
    seen(frame_b)
    for spec, cost in run:
        resp = response(build_usage(spec), cost)
        general(frame_a, resp)
        assert queued_or_general(frame_b, resp) == has_tokens(spec)
    assert tallies(queued) == tallies(one_by_one)


@pytest.mark.parametrize("odd", [True, 2.5, -3, None])
@pytest.mark.parametrize("field", ["prompt_tokens", "completion_tokens", "cached_tokens"])
def test_odd_values_set_on_a_usage_count_as_the_general_path_counts_them(
    field: str, odd: Any
) -> None:
    """A bool, float, negative or None put on a Usage after LiteLLM built it: same numbers."""
    one_by_one, queued = tm.Meter(), tm.Meter()
    frame_a, frame_b = frame_of(one_by_one, "a"), frame_of(queued, "a")
    seen(frame_b)
    for k in range(6):
        u = Usage(prompt_tokens=50, completion_tokens=7, prompt_tokens_details={"cached_tokens": 5})
        if k == 3:
            target = u.prompt_tokens_details if field == "cached_tokens" else u
            setattr(target, field, odd)
        resp = response(u)
        general(frame_a, resp)
        assert queued_or_general(frame_b, resp)
    assert tallies(queued) == tallies(one_by_one)


def test_a_response_without_a_cost_in_a_run_is_priced_as_the_general_path_prices_it() -> None:
    """No response_cost among LiteLLM's hidden parameters: priced from the map, same numbers."""
    one_by_one, queued = tm.Meter(), tm.Meter()
    frame_a, frame_b = frame_of(one_by_one, "a"), frame_of(queued, "a")
    seen(frame_b)
    for k in range(6):
        resp = response(Usage(prompt_tokens=1000, completion_tokens=100))
        if k == 2:
            del resp._hidden_params["response_cost"]
        general(frame_a, resp)
        assert queued_or_general(frame_b, resp)
    assert tallies(queued) == tallies(one_by_one)
    assert tallies(queued)[("a",)][("gpt-4o-mini", "openai", None, None)][:2] == [6, 6000]


def test_a_run_of_plain_responses_is_summed_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """300 responses on one scope and model: summed by columns, every token and 1e-10 dollar."""

    def not_one_by_one(*a: Any) -> None:
        raise AssertionError("a plain run was counted one by one")

    monkeypatch.setattr(_litellm.deferred, "count_one", not_one_by_one)
    meter = tm.Meter()
    frame = frame_of(meter, "run")
    seen(frame)
    for k in range(300):
        u = Usage(
            prompt_tokens=100 + k,
            completion_tokens=20,
            prompt_tokens_details={"cached_tokens": k % 7},
            completion_tokens_details={"reasoning_tokens": k % 5},
        )
        assert _litellm.deferred.defer(frame, response(u, cost=1e-6 * (k + 1)), 0.0)
    usage = frame.scope.usage
    assert usage.calls == 300
    assert usage.input_tokens == sum(100 + k for k in range(300))
    assert usage.output_tokens == 20 * 300
    assert usage.cache_read_tokens == sum(k % 7 for k in range(300))
    assert usage.reasoning_tokens == sum(k % 5 for k in range(300))
    assert usage.cost_usd == sum(round(1e-6 * (k + 1) * 10**10) for k in range(300)) / 10**10


def test_a_run_without_token_details_is_summed_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """300 responses with no details (short rows): summed by columns, every token and cost."""

    def not_one_by_one(*a: Any) -> None:
        raise AssertionError("a plain run was counted one by one")

    monkeypatch.setattr(_litellm.deferred, "count_one", not_one_by_one)
    meter = tm.Meter()
    frame = frame_of(meter, "run")
    seen(frame)
    for k in range(300):
        u = Usage(prompt_tokens=100 + k, completion_tokens=20 + k % 3)
        assert _litellm.deferred.defer(frame, response(u, cost=1e-6 * (k + 1)), 0.0)
    assert len(meter._pending[-1]) == 6  # a short row
    usage = frame.scope.usage
    assert (usage.calls, usage.input_tokens, usage.output_tokens) == (300, 74850, 6300)
    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (0, 0, 0)
    assert usage.cost_usd == sum(round(1e-6 * (k + 1) * 10**10) for k in range(300)) / 10**10


def test_a_run_mixing_responses_with_and_without_details_counts_each_exactly() -> None:
    """Short and long rows for one tally in one batch: 6 calls, the details of 3 counted."""
    meter = tm.Meter()
    frame = frame_of(meter, "mixed")
    seen(frame)
    for k in range(6):
        if k % 2:
            u = Usage(
                prompt_tokens=1000,
                completion_tokens=200,
                prompt_tokens_details={"cached_tokens": 400},
                completion_tokens_details={"reasoning_tokens": 50},
            )
        else:
            u = Usage(prompt_tokens=10, completion_tokens=2)
        assert _litellm.deferred.defer(frame, response(u, cost=0.001), 0.0)
    assert sorted(map(len, meter._pending)) == [6, 6, 6, 11, 11, 11]
    usage = frame.scope.usage
    assert (usage.calls, usage.input_tokens, usage.output_tokens) == (6, 3030, 606)
    assert (usage.cache_read_tokens, usage.reasoning_tokens) == (1200, 150)
    assert usage.cost_usd == 0.006


@pytest.mark.parametrize("cost", [2.5e-10, 1.5e-6, 0.1 + 0.2, 7.35e-5, 0.0, float("nan")])
def test_a_run_of_one_cost_counts_what_the_general_path_counts(cost: float) -> None:
    """300 calls with the same cost (a repeated call): each call's cost rounded, as one by one."""
    one_by_one, queued = tm.Meter(), tm.Meter()
    frame_a, frame_b = frame_of(one_by_one, "a"), frame_of(queued, "a")
    seen(frame_b)
    for _ in range(300):
        resp = response(Usage(prompt_tokens=9, completion_tokens=3), cost=cost)
        general(frame_a, resp)
        assert queued_or_general(frame_b, resp)
    assert tallies(queued) == tallies(one_by_one)


def test_a_run_of_one_cost_rounds_each_call() -> None:
    """300 calls of 2.5e-10 dollars: 2 units each (rounded half to even), 600 units in all."""
    meter = tm.Meter()
    frame = frame_of(meter, "run")
    seen(frame)
    for _ in range(300):
        assert _litellm.deferred.defer(
            frame, response(Usage(prompt_tokens=9, completion_tokens=3), cost=2.5e-10), 0.0
        )
    usage = frame.scope.usage
    assert (usage.calls, usage.input_tokens, usage.output_tokens) == (300, 2700, 900)
    assert usage.cost_usd == 600 / 10**10


# -- what is queued and what is not ---------------------------------------------------------


def test_a_plain_response_is_queued_until_something_reads() -> None:
    """The first call of a model on a scope is counted at once; the next ones wait for a reading."""
    meter = tm.Meter()
    with meter.track("s") as scope:
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        assert meter._pending == []
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        assert len(meter._pending) == 2
        assert scope.usage.calls == 3
        assert meter._pending == []


def test_a_model_new_to_a_scope_is_counted_at_once() -> None:
    """Each scope and each model starts on the general path, which files the tally."""
    meter = tm.Meter()
    with meter.track("a"):
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        litellm.completion(model="gpt-4o", messages=MSGS, mock_response="x")
    with meter.track("b"):
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    assert meter._pending == []
    with meter.track("a"):
        litellm.completion(model="gpt-4o", messages=MSGS, mock_response="x")
    assert len(meter._pending) == 1


@pytest.mark.parametrize(
    ("why", "resp"),
    [
        ("a cache hit", response(Usage(prompt_tokens=1, completion_tokens=1), cache_hit=True)),
        ("no usage", response(None)),
        ("no model name", response(Usage(prompt_tokens=1, completion_tokens=1), model="")),
    ],
)
def test_responses_that_need_the_general_path_are_not_queued(why: str, resp: Any) -> None:
    """A cache hit, a response without usage or without a model name is recorded at once."""
    frame = frame_of(tm.Meter(), "s")
    seen(frame)
    assert _litellm.deferred.defer(frame, resp, 0.0) is False, why
    assert frame.scope.meter._pending == []


def test_with_per_call_records_nothing_is_queued() -> None:
    """keep_records=True records each call at once, with its CallRecord."""
    meter = tm.Meter(keep_records=True)
    with meter.track("s"):
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    assert meter._pending == []
    assert [r.path for r in meter.records()] == [("s",)]


def test_with_a_budget_on_the_path_nothing_is_queued() -> None:
    """A budgeted scope counts each call at once, so its limit is checked on exact numbers."""
    meter = tm.Meter()
    with meter.track("s", max_calls=5) as scope:
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        assert meter._pending == []
        assert scope._incl is not None
        assert scope._incl[0] == 1


def test_with_custom_prices_nothing_is_queued() -> None:
    """A custom price is applied by the general path."""
    tm.set_price("gpt-4o-mini", input_per_mtok=1.0, output_per_mtok=2.0)
    try:
        meter = tm.Meter()
        with meter.track("s") as scope:
            litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
            assert meter._pending == []
        assert scope.usage.cost_usd == pytest.approx((10 * 1.0 + 20 * 2.0) / 1e6, rel=1e-12)
    finally:
        tm.clear_prices()


def test_a_price_set_after_the_call_does_not_reprice_it() -> None:
    """A queued call keeps LiteLLM's cost even if a custom price is set before it is counted."""
    meter = tm.Meter()
    with meter.track("s") as scope:
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    tm.set_price("gpt-4o-mini", input_per_mtok=1000.0, output_per_mtok=1000.0)
    try:
        assert len(meter._pending) == 1
        assert scope.usage.cost_usd == pytest.approx(2 * (10 * 1.5e-7 + 20 * 6e-7), rel=1e-12)
    finally:
        tm.clear_prices()


def test_the_queue_is_counted_once_it_holds_a_batch() -> None:
    """The queue never holds PENDING_BATCH results: the call that fills it counts the batch."""
    meter = tm.Meter()
    frame = frame_of(meter, "s")
    seen(frame)
    resp = response(Usage(prompt_tokens=3, completion_tokens=4))
    for _ in range(_tree.PENDING_BATCH - 1):
        assert _litellm.deferred.defer(frame, resp, 0.0)
    assert len(meter._pending) == _tree.PENDING_BATCH - 1
    assert _litellm.deferred.defer(frame, resp, 0.0)
    assert meter._pending == []
    assert frame.scope._dims[("gpt-4o-mini", "openai", None, None)][:2] == [
        _tree.PENDING_BATCH,
        3 * _tree.PENDING_BATCH,
    ]


# -- every reading sees the queued calls ----------------------------------------------------


def test_every_reading_counts_the_queue_first() -> None:
    """usage, self_usage, reports of the meter and of a scope all include queued calls."""
    meter = tm.Meter()
    with meter.track("outer") as outer, meter.track("inner") as inner:
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        assert outer.self_usage.calls == 0
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        assert inner.self_usage.calls == 2
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        assert outer.usage.calls == 3
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        assert meter.report().total.calls == 4
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        assert inner.report().total.calls == 5


def test_a_budget_set_later_counts_the_queued_calls() -> None:
    """Setting a budget on a scope counts what was queued under it first."""
    meter = tm.Meter()
    with meter.track("s"):
        for _ in range(3):
            litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    assert len(meter._pending) == 2
    with (
        pytest.raises(tm.BudgetExceeded, match="max_calls=3, spent 3"),
        meter.track("s", max_calls=3),
    ):
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")


def test_reset_drops_the_calls_queued_before_it() -> None:
    """A reset counts the queue first, so calls made before it are gone with it."""
    meter = tm.Meter()
    with meter.track("s") as scope:
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        meter.reset()
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    assert scope.usage.calls == 1


def test_the_time_span_is_the_calls_time() -> None:
    """A report's first and last call times are when the queued calls were made, not counted."""
    meter = tm.Meter()
    with meter.track("warm-up"):  # the first call of a model on a scope is not queued
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    meter.reset()
    with meter.track("warm-up"):
        before = time.time()
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        after = time.time()
    assert len(meter._pending) == 2
    time.sleep(0.2)
    with meter._lock:
        _tree.settle_locked(meter)
        first, last = meter._first_ts, meter._last_ts
    assert first is not None
    assert last is not None
    # Within a millisecond: wall-clock and monotonic clocks are read a moment apart.
    assert before - 1e-3 <= first <= last <= after + 1e-3
    assert last - first < 0.1


# -- under threads ---------------------------------------------------------------------------


def test_threads_queueing_while_others_read_lose_nothing() -> None:
    """4 threads x 3,000 queued calls on 3 scopes while 2 threads read: every call counted."""
    import sys
    import threading

    resp = response(Usage(prompt_tokens=7, completion_tokens=3), cost=1e-6)
    call = _litellm.wrap_sync(lambda **kw: resp, "completion")
    meter = tm.Meter()
    done = threading.Event()
    seen: list[list[int]] = [[], []]

    def worker(k: int) -> None:
        with meter.track(f"s{k % 3}"):
            for _ in range(3_000):
                call(model="gpt-4o-mini", messages=MSGS)

    def reader(mine: list[int]) -> None:
        while not done.is_set():
            mine.append(meter.report().total.calls)

    readers = [threading.Thread(target=reader, args=(mine,)) for mine in seen]
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for t in readers + workers:
            t.start()
        for t in workers:
            t.join()
        done.set()
        for t in readers:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    total = meter.report().total
    assert (total.calls, total.input_tokens, total.output_tokens) == (12_000, 84_000, 36_000)
    assert total.cost_usd == 12_000 * 1e-6
    assert [meter.root.children[f"s{k}"].usage.calls for k in range(3)] == [6_000, 3_000, 3_000]
    for mine in seen:  # each reader's readings never go back
        assert mine == sorted(mine)
        assert mine
