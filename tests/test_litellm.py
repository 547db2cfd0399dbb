"""LiteLLM calls land exactly once on the scope that made them (real LiteLLM, mock responses)."""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import logging
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import litellm
import pytest
from litellm import ModelResponse, Usage
from litellm.integrations.custom_logger import CustomLogger
from support.callbacks import registered
from support.versions import acompletion_flag_works, pixel_price

import tokenmeter as tm
from tokenmeter import _errors, _litellm, _tree

MSGS = [{"role": "user", "content": "hi"}]
# LiteLLM's mock usage for a string mock_response: 10 prompt, 20 completion tokens.
MOCK_COST_GPT4O_MINI = 10 * 1.5e-7 + 20 * 6e-7


def mock_usage(model: str, usage: Usage) -> ModelResponse:
    """A ModelResponse carrying exactly this usage."""
    return ModelResponse(
        model=model, usage=usage, choices=[{"message": {"role": "assistant", "content": "ok"}}]
    )


def test_completion_lands_once_on_its_scope() -> None:
    """A completion inside a scope is one call there, with LiteLLM's tokens and cost."""
    with tm.track("agent"):
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="hello")
    rep = tm.report()
    u = rep.node("agent").self_usage
    assert (u.calls, u.input_tokens, u.output_tokens) == (1, 10, 20)
    assert u.cost_usd == pytest.approx(MOCK_COST_GPT4O_MINI, rel=1e-12)
    assert rep.total.calls == 1
    assert rep.by_provider() == {"openai": u}


def test_report_right_after_return_includes_the_call() -> None:
    """Read-your-writes: no flush or sleep is needed between a call and the report."""
    with tm.track("a"):
        for i in range(5):
            litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
            assert tm.report().total.calls == i + 1


async def test_acompletion_read_your_writes() -> None:
    """An awaited acompletion is in the report as soon as the await completes."""
    with tm.track("a"):
        await litellm.acompletion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        assert tm.report().node("a").usage.calls == 1


def test_exact_usage_with_cached_and_reasoning_tokens() -> None:
    """Cached and reasoning token counts come from LiteLLM's Usage, priced by LiteLLM."""
    usage = Usage(
        prompt_tokens=1000,
        completion_tokens=200,
        total_tokens=1200,
        prompt_tokens_details={"cached_tokens": 400},
        completion_tokens_details={"reasoning_tokens": 50},
    )
    with tm.track("r"):
        litellm.completion(
            model="gpt-4o-mini", messages=MSGS, mock_response=mock_usage("gpt-4o-mini", usage)
        )
    u = tm.report().node("r").usage
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens) == (
        1000,
        400,
        200,
        50,
    )
    assert u.cost_usd == pytest.approx(600 * 1.5e-7 + 400 * 7.5e-8 + 200 * 6e-7, rel=1e-12)


def test_anthropic_cache_fields() -> None:
    """Anthropic cache read and write tokens are parts of input, priced at their own rates."""
    usage = Usage(
        prompt_tokens=1700,
        completion_tokens=200,
        total_tokens=1900,
        cache_read_input_tokens=500,
        cache_creation_input_tokens=200,
    )
    with tm.track("c"):
        litellm.completion(
            model="anthropic/claude-sonnet-4-5",
            messages=MSGS,
            mock_response=mock_usage("claude-sonnet-4-5", usage),
        )
    rep = tm.report()
    u = rep.node("c").usage
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens) == (
        1700,
        500,
        200,
        200,
    )
    assert u.cost_usd == pytest.approx(
        1000 * 3e-6 + 500 * 3e-7 + 200 * 3.75e-6 + 200 * 1.5e-5, rel=1e-12
    )
    assert list(rep.by_model()) == ["claude-sonnet-4-5"]
    assert list(rep.by_provider()) == ["anthropic"]


def test_failed_call_counts_and_exception_passes_unchanged() -> None:
    """A call that raises is a failed call on its scope; the user gets LiteLLM's exception."""
    with tm.track("f"), pytest.raises(litellm.InternalServerError) as info:
        litellm.completion(
            model="gpt-4o-mini", messages=MSGS, mock_response="litellm.InternalServerError"
        )
    assert "mock internal server error" in str(info.value)
    u = tm.report().node("f").usage
    assert (u.calls, u.failed_calls, u.total_tokens, u.cost_usd, u.unpriced_calls) == (
        1,
        1,
        0,
        0.0,
        0,
    )


async def test_async_failure_counts() -> None:
    """A failing acompletion is a failed call on its scope."""
    with tm.track("f"), pytest.raises(litellm.InternalServerError):
        await litellm.acompletion(
            model="gpt-4o-mini", messages=MSGS, mock_response="litellm.InternalServerError"
        )
    assert tm.report().node("f").usage.failed_calls == 1


def test_unknown_model_is_unpriced_not_free() -> None:
    """A model with no known price counts in unpriced_calls, with no cost added."""
    with tm.track("u"):
        litellm.completion(model="openai/no-such-model-1", messages=MSGS, mock_response="x")
    u = tm.report().node("u").usage
    assert (u.calls, u.unpriced_calls, u.priced_calls, u.cost_usd) == (1, 1, 0, 0.0)


def test_custom_price_overrides_litellm() -> None:
    """tm.set_price replaces LiteLLM's price for that model."""
    tm.set_price("gpt-4o-mini", input_per_mtok=1.0, output_per_mtok=2.0)
    with tm.track("p"):
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    assert tm.report().total.cost_usd == pytest.approx((10 * 1.0 + 20 * 2.0) / 1e6, rel=1e-12)


def test_a_custom_price_past_any_real_cost_leaves_a_litellm_call_unpriced() -> None:
    """A LiteLLM call that a 1e300/Mtok custom price would cost ~$1e295 is recorded unpriced."""
    tm.set_price("gpt-4o-mini", input_per_mtok=1e300, output_per_mtok=1e300)
    with tm.track("a"):
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    u = tm.report().node("a").usage
    assert (u.calls, u.input_tokens, u.output_tokens, u.unpriced_calls, u.cost_usd) == (
        1, 10, 20, 1, 0.0,
    )  # fmt: skip


def test_custom_price_prices_an_unknown_model() -> None:
    """A custom price makes an otherwise unpriced model priced."""
    tm.set_price("openai/in-house-1", input_per_mtok=3.0, output_per_mtok=3.0)
    with tm.track("p"):
        litellm.completion(model="openai/in-house-1", messages=MSGS, mock_response="x")
    u = tm.report().total
    assert (u.unpriced_calls, u.cost_usd) == (0, pytest.approx(30 * 3.0 / 1e6, rel=1e-12))


def test_provider_is_litellms_resolution() -> None:
    """The provider is the one LiteLLM resolved, and the model loses only that prefix."""
    with tm.track("p"):
        litellm.completion(model="openrouter/x-ai/grok-4.1-fast", messages=MSGS, mock_response="x")
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    rep = tm.report()
    assert sorted(rep.by_provider()) == ["openai", "openrouter"]
    assert sorted(rep.by_model()) == ["gpt-4o-mini", "x-ai/grok-4.1-fast"]


def test_module_and_operation_dimensions() -> None:
    """Calls inside @tracked(module=, operation=) carry those dimensions."""

    @tm.tracked(module="persona", operation="formulate")
    def formulate() -> None:
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")

    formulate()
    formulate()
    rep = tm.report()
    assert rep.by_module()["persona"].calls == 2
    assert rep.by_operation()["formulate"].calls == 2


def test_stream_recorded_when_exhausted() -> None:
    """A sync stream is recorded once, when exhausted, flagged estimated (mocks send no usage)."""
    with tm.track("s"):
        stream = litellm.completion(
            model="gpt-4o-mini", messages=MSGS, mock_response="one two three", stream=True
        )
        assert tm.report().total.calls == 0
        text = "".join(c.choices[0].delta.content or "" for c in stream)
        u = tm.report().node("s").usage
    assert text == "one two three"
    assert (u.calls, u.estimated_calls, u.output_tokens) == (1, 1, 3)
    assert u.input_tokens > 0
    assert u.cost_usd == pytest.approx(u.input_tokens * 1.5e-7 + 3 * 6e-7, rel=1e-12)


async def test_async_stream_recorded_when_exhausted() -> None:
    """An async stream is recorded once, when exhausted."""
    with tm.track("s"):
        stream = await litellm.acompletion(
            model="gpt-4o-mini", messages=MSGS, mock_response="one two", stream=True
        )
        async for _ in stream:
            pass
    u = tm.report().node("s").usage
    assert (u.calls, u.output_tokens, u.estimated_calls) == (1, 2, 1)


def test_stream_consumed_in_another_thread_lands_on_callers_scope() -> None:
    """A stream made in scope A and read in a thread inside scope B lands on A."""
    with tm.track("A"):
        stream = litellm.completion(
            model="gpt-4o-mini", messages=MSGS, mock_response="a b c", stream=True
        )
    with tm.track("B"):
        t = threading.Thread(target=lambda: list(stream))
        t.start()
        t.join()
    rep = tm.report()
    assert rep.node("A").usage.calls == 1
    assert rep.node("B").usage.calls == 0


async def test_async_stream_consumed_in_another_task_lands_on_callers_scope() -> None:
    """An async stream made in scope A and read by a task in scope B lands on A."""
    with tm.track("A"):
        stream = await litellm.acompletion(
            model="gpt-4o-mini", messages=MSGS, mock_response="a b c", stream=True
        )

    async def consume() -> None:
        with tm.track("B"):
            async for _ in stream:
                pass

    await asyncio.create_task(consume())
    rep = tm.report()
    assert (rep.node("A").usage.calls, rep.node("B").usage.calls) == (1, 0)


def test_abandoned_stream_is_recorded_estimated() -> None:
    """Breaking out of a stream and dropping it records the call with the usage seen so far."""
    with tm.track("s"):
        stream = litellm.completion(
            model="gpt-4o-mini", messages=MSGS, mock_response="a b c d e f g h", stream=True
        )
        next(stream)
        del stream
    # LiteLLM's logging pool may hold the stream a moment longer: it is recorded when freed.
    deadline = time.monotonic() + 10
    while tm.report().total.calls == 0 and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    u = tm.report().node("s").usage
    assert (u.calls, u.estimated_calls, u.failed_calls) == (1, 1, 0)


def test_closed_stream_is_recorded_at_close() -> None:
    """Closing a stream early records it at once (read-your-writes), never twice."""
    if not hasattr(litellm.CustomStreamWrapper, "close"):
        pytest.skip("this LiteLLM's streams have no close() (added in 1.107)")
    with tm.track("s"):
        stream = litellm.completion(
            model="gpt-4o-mini", messages=MSGS, mock_response="a b c d", stream=True
        )
        next(stream)
        stream.close()
        assert tm.report().node("s").usage.calls == 1
        del stream
        gc.collect()
    assert tm.report().node("s").usage.calls == 1


def test_stream_usage_request_can_be_turned_off() -> None:
    """With request_stream_usage off, the request keeps no stream_options of ours."""
    seen: list[Any] = []

    class Spy(CustomLogger):  # type: ignore[misc]
        def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
            seen.append(kwargs.get("optional_params", {}).get("stream_options"))

    with registered(Spy()):
        tm.request_stream_usage(False)
        list(litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="a", stream=True))
        tm.request_stream_usage(True)
        chunks = list(
            litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="a", stream=True)
        )
    assert all(getattr(c, "usage", None) is None for c in chunks)
    assert tm.report().total.calls == 2


def test_embedding_and_text_completion() -> None:
    """Embeddings and text completions are recorded with their kinds' tokens."""
    with tm.track("e"):
        litellm.embedding(model="text-embedding-3-small", input=["abc"], mock_response=[0.1, 0.2])
        litellm.text_completion(model="gpt-3.5-turbo-instruct", prompt="hi", mock_response="x")
    rep = tm.report()
    assert rep.node("e").usage.calls == 2
    assert rep.by_model()["text-embedding-3-small"].input_tokens == 10
    assert rep.by_model()["text-embedding-3-small"].output_tokens == 0
    assert rep.by_model()["gpt-3.5-turbo-instruct"].output_tokens == 20


async def test_aembedding_and_responses() -> None:
    """Async embeddings and the Responses API are recorded."""
    with tm.track("e"):
        await litellm.aembedding(
            model="text-embedding-3-small", input=["abc"], mock_response=[0.1, 0.2]
        )
        litellm.responses(model="gpt-4o-mini", input="hi", mock_response="yo")
    rep = tm.report()
    assert rep.node("e").usage.calls == 2
    assert rep.by_model()["gpt-4o-mini"].input_tokens > 0


def test_image_generation_mock_is_unpriced() -> None:
    """A mock image generation has no price: it counts as unpriced, never $0."""
    with tm.track("img"):
        litellm.image_generation(model="openai/dall-e-3", prompt="a cat", mock_response="x")
    u = tm.report().node("img").usage
    price = pixel_price("dall-e-3")
    if price is not None:
        # Older LiteLLM (1.80 to 1.105) prices dall-e-3 per pixel by its map, a mock too (as
        # its own response_cost, without tokenmeter): that price, 0 tokens.
        assert (u.calls, u.unpriced_calls, u.total_tokens) == (1, 0, 0)
        assert u.cost_usd == pytest.approx(price, rel=1e-9)
        return
    assert (u.calls, u.unpriced_calls, u.total_tokens) == (1, 1, 0)


def test_sdk_fallbacks_record_once() -> None:
    """completion(fallbacks=[...]) records one call, the one that answered."""
    with tm.track("fb"):
        r = litellm.completion(
            model="openai/no-such-model-1",
            messages=MSGS,
            mock_response="litellm.InternalServerError",
            fallbacks=[{"model": "gpt-4o-mini", "mock_response": "ok"}],
        )
    assert r.choices[0].message.content == "ok"
    rep = tm.report()
    assert rep.node("fb").usage.calls == 1
    assert list(rep.by_model()) == ["gpt-4o-mini"]


def _router(**kw: Any) -> litellm.Router:
    return litellm.Router(
        model_list=[
            {
                "model_name": "bad",
                "litellm_params": {
                    "model": "gpt-4o",
                    "mock_response": "litellm.InternalServerError",
                },
            },
            {
                "model_name": "good",
                "litellm_params": {"model": "gpt-4o-mini", "mock_response": "fine"},
            },
        ],
        **kw,
    )


def test_router_retries_and_fallbacks_record_once() -> None:
    """A Router call with retries and a fallback is one call, on the fallback model."""
    router = _router(num_retries=2, fallbacks=[{"bad": ["good"]}], retry_after=0)
    with tm.track("router"):
        r = router.completion(model="bad", messages=MSGS)
    assert r.choices[0].message.content == "fine"
    rep = tm.report()
    assert rep.node("router").usage.calls == 1
    assert rep.node("router").usage.failed_calls == 0
    assert list(rep.by_model()) == ["gpt-4o-mini"]


async def test_async_router_records_once() -> None:
    """An async Router call with retries and a fallback is one call."""
    router = _router(num_retries=2, fallbacks=[{"bad": ["good"]}], retry_after=0)
    with tm.track("router"):
        await router.acompletion(model="bad", messages=MSGS)
        await router.acompletion(model="good", messages=MSGS)
    assert tm.report().node("router").usage.calls == 2


async def test_router_stream_records_once() -> None:
    """A streamed Router call is recorded once, on the caller's scope."""
    router = _router()
    with tm.track("rs"):
        stream = await router.acompletion(model="good", messages=MSGS, stream=True)
        async for _ in stream:
            pass
        sync_stream = router.completion(model="good", messages=MSGS, stream=True)
        for _ in sync_stream:
            pass
    assert tm.report().node("rs").usage.calls == 2


def test_router_failure_counts_once() -> None:
    """A Router call whose every attempt fails is one failed call."""
    router = _router(num_retries=1, retry_after=0)
    with tm.track("rf"), pytest.raises(litellm.InternalServerError):
        router.completion(model="bad", messages=MSGS)
    u = tm.report().node("rf").usage
    assert (u.calls, u.failed_calls) == (1, 1)


async def test_gathered_tasks_each_in_own_scope() -> None:
    """100 gathered tasks, each in its own scope, each land exactly one call there."""

    async def worker(i: int) -> None:
        with tm.track(f"task-{i}"):
            await litellm.acompletion(model="gpt-4o-mini", messages=MSGS, mock_response="x")

    with tm.track("batch"):
        await asyncio.gather(*(worker(i) for i in range(100)))
    rep = tm.report()
    assert rep.node("batch").usage.calls == 100
    assert all(rep.node("batch", f"task-{i}").usage.calls == 1 for i in range(100))


def test_thread_pool_calls_land_on_submitting_scope() -> None:
    """64 calls over an 8-thread pool land on the scope that submitted them."""

    def call(_: int) -> None:
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")

    with tm.track("pool"), ThreadPoolExecutor(max_workers=8) as ex:
        list(ex.map(call, range(64)))
    rep = tm.report()
    assert rep.node("pool").usage.calls == 64
    assert rep.total.calls == 64


@pytest.mark.parametrize(
    "calls", [1_000, pytest.param(10_000, marks=pytest.mark.slow)], ids=["1000", "10000"]
)
async def test_burst_of_concurrent_calls_loses_nothing(calls: int) -> None:
    """N concurrent acompletions, 200 in flight at once, are N calls: none lost, none doubled."""
    sem = asyncio.Semaphore(200)

    async def one(i: int) -> None:
        async with sem:
            with tm.track(f"shard-{i % 10}"):
                await litellm.acompletion(model="gpt-4o-mini", messages=MSGS, mock_response="x")

    with tm.track("burst"):
        await asyncio.gather(*(one(i) for i in range(calls)))
    rep = tm.report()
    assert rep.node("burst").usage.calls == calls
    assert rep.node("burst").usage.input_tokens == 10 * calls
    assert [rep.node("burst", f"shard-{k}").usage.calls for k in range(10)] == [calls // 10] * 10


def test_budget_refuses_a_call_before_it_starts() -> None:
    """A reached max_calls budget raises BudgetExceeded and the call never starts."""
    with tm.track("b", max_calls=2):
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        with pytest.raises(tm.BudgetExceeded) as info:
            litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    assert (info.value.path, info.value.kind, info.value.limit, info.value.spent) == (
        ("b",),
        "max_calls",
        2,
        2,
    )
    assert tm.report().node("b").usage.calls == 2


def test_users_callbacks_keep_working() -> None:
    """A user's own LiteLLM callback still receives its events."""
    events: list[str] = []

    class Mine(CustomLogger):  # type: ignore[misc]
        def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
            events.append("pre")

    with registered(Mine()), tm.track("cb"):
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    assert events == ["pre"]
    assert tm.report().node("cb").usage.calls == 1


def test_uninstrument_and_instrument_again() -> None:
    """After uninstrument() calls are not recorded; instrument() brings attribution back."""
    bound = litellm.completion  # a name bound while instrumented
    tm.uninstrument()
    try:
        assert not hasattr(litellm.completion, "__tokenmeter_original__")
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        bound(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        assert tm.report().total.calls == 0
    finally:
        tm.instrument()
    litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    assert tm.report().total.calls == 1


def broken(*a: Any, **k: Any) -> None:
    """Stands in for a piece of tokenmeter with a bug."""
    raise RuntimeError("boom")


def test_internal_error_is_logged_and_the_call_returns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in recording is logged on the tokenmeter logger; the user's call still returns."""

    monkeypatch.setattr(_errors, "RAISE_INTERNAL_ERRORS", False)
    monkeypatch.setattr(_litellm.wrappers, "defer", broken)
    monkeypatch.setattr(_litellm.wrappers, "record_result", broken)
    with caplog.at_level(logging.ERROR, logger="tokenmeter"):
        r = litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="still fine")
    assert r.choices[0].message.content == "still fine"
    assert caplog.text.count("tokenmeter internal error in call recording") == 2


def test_a_bug_counting_deferred_calls_is_logged_and_reading_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug while counting queued calls is logged; the call returned and the report still works."""

    monkeypatch.setattr(_errors, "RAISE_INTERNAL_ERRORS", False)
    monkeypatch.setattr(_tree, "_apply_pending", broken)
    meter = tm.Meter()
    with meter.track("s") as scope:
        # The first call of a model on a scope is counted at once, the second is queued.
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="counted")
        r = litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="still fine")
    assert r.choices[0].message.content == "still fine"
    with caplog.at_level(logging.ERROR, logger="tokenmeter"):
        assert scope.usage.calls == 1
    assert "tokenmeter internal error in counting LiteLLM calls" in caplog.text
    assert meter._pending == []


@pytest.mark.parametrize("order", ["litellm-first", "tokenmeter-first"])
def test_attaches_whichever_is_imported_first(order: str) -> None:
    """Attribution attaches whether litellm is imported before or after tokenmeter."""
    pair = ("litellm", "tokenmeter")
    first, second = pair if order == "litellm-first" else pair[::-1]
    code = (
        f"import {first}, {second}\n"
        "import tokenmeter as tm, litellm\n"
        "from litellm import completion\n"
        "with tm.track('x'):\n"
        "    completion(model='gpt-4o-mini', messages=[{'role':'user','content':'hi'}],"
        " mock_response='y')\n"
        "print(tm.report().node('x').usage.calls)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_report_names_the_prices_it_used() -> None:
    """A report names LiteLLM's version, its bundled price map and the custom prices."""
    tm.set_price("gpt-4o-mini", input_per_mtok=1.0, output_per_mtok=2.0)
    prices = tm.report().meta["prices"]
    assert prices["litellm_version"] == importlib.metadata.version("litellm")
    assert prices["cost_map"]["source"] == "bundled"
    assert prices["custom"] == {
        "gpt-4o-mini": {
            "input_per_mtok": 1.0,
            "output_per_mtok": 2.0,
            "cache_read_per_mtok": None,
            "cache_write_per_mtok": None,
        }
    }


@pytest.mark.parametrize("how", ["thread", "executor"])
def test_an_attempt_in_a_thread_started_during_a_call_is_counted_once(how: str) -> None:
    """LiteLLM code that retries in a worker thread inside a call adds no second call."""

    def provider_call(**kwargs: Any) -> Any:
        out: list[Any] = []

        def attempt() -> None:
            out.append(litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x"))

        if how == "thread":
            t = threading.Thread(target=attempt)
            t.start()
            t.join()
        else:
            with ThreadPoolExecutor(1) as pool:
                pool.submit(attempt).result()
        return out[0]

    call = _litellm.wrap_sync(provider_call, "completion")
    with tm.track("s") as scope:
        call(model="gpt-4o-mini", messages=MSGS)
    assert scope.usage.calls == 1
    assert scope.usage.input_tokens == 10


def test_a_failed_sync_call_leaves_no_call_marker_behind() -> None:
    """After a call raises, the next call on the thread is a call of its own, not an attempt."""
    from tokenmeter._scope import THREAD_CALL

    with tm.track("s") as scope:
        with pytest.raises(litellm.InternalServerError):
            litellm.completion(
                model="gpt-4o-mini", messages=MSGS, mock_response="litellm.InternalServerError"
            )
        assert THREAD_CALL.call is None
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    assert (scope.usage.calls, scope.usage.failed_calls) == (2, 1)


@acompletion_flag_works
async def test_completion_with_acompletion_true_is_one_call_when_awaited() -> None:
    """completion(..., acompletion=True) returns a coroutine; awaited, it is one call."""
    with tm.track("s") as scope:
        coro = litellm.completion(
            model="gpt-4o-mini", messages=MSGS, mock_response="x", acompletion=True
        )
        assert scope.usage.calls == 0
        await coro
    assert (scope.usage.calls, scope.usage.input_tokens, scope.usage.output_tokens) == (1, 10, 20)


@acompletion_flag_works
async def test_completion_with_acompletion_true_and_fallbacks_failing_is_one_failed_call() -> None:
    """Its fallbacks run while it is awaited: every model failing is still one failed call."""
    with tm.track("s") as scope:
        coro = litellm.completion(
            model="gpt-4o-mini",
            messages=MSGS,
            mock_response="litellm.InternalServerError",
            acompletion=True,
            fallbacks=["gpt-4o"],
        )
        with pytest.raises(Exception, match="mock internal server error"):
            await coro
    assert (scope.usage.calls, scope.usage.failed_calls) == (1, 1)
