"""LiteLLM attribution at the edges: cached streams, responses that carry no usage.

Each call lands once, with the numbers the provider served or, where it served none,
LiteLLM's estimate priced from its tokens: never 0 tokens and $0 for a call that ran.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from support.responses import usage_counts

import tokenmeter as tm
from tests.fakeproviders import NO_USAGE_CONTENT, FakeOpenAI, serving_offline

MSGS = [{"role": "user", "content": "hi"}]
CONTENT = NO_USAGE_CONTENT
# gpt-4o-mini: $1.5e-7 an input token, $6e-7 an output token; the server's usage: 100 in, 7 out.
SERVED_COST = 100 * 1.5e-7 + 7 * 6e-7


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(usage={"prompt": 100, "completion": 7}, content=CONTENT) as srv:
        yield srv


@pytest.fixture
def srv(_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    with serving_offline(_server) as server:
        yield server


def _chat(srv: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "api_base": srv.base_url + "/v1",
        "api_key": "sk-fake",
        "messages": MSGS,
        **extra,
    }


# -- cache hits served as a stream -------------------------------------------------------


async def _until(cache: litellm.Cache, entries: int) -> None:
    """LiteLLM writes a stream's cache entry after its end, in a thread or a task: wait for it."""
    for _ in range(400):
        if len(cache.cache.cache_dict) >= entries:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("LiteLLM never wrote the cache entry")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_cache_hit_served_as_a_stream_is_one_free_call(mode: str, srv: FakeOpenAI) -> None:
    """A stream twice, local cache: 1 request; the hit is 1 call, 0 tokens, $0, cache_hit."""
    meter = tm.Meter(keep_records=True)
    cache = litellm.Cache(type="local")

    async def read() -> str:
        if mode == "sync":
            stream = litellm.completion(**_chat(srv, stream=True, caching=True))
            return "".join(c.choices[0].delta.content or "" for c in stream)
        stream = await litellm.acompletion(**_chat(srv, stream=True, caching=True))
        return "".join([c.choices[0].delta.content or "" async for c in stream])

    async def twice() -> tuple[str, str]:
        served = await read()
        await _until(cache, 1)
        return served, await read()

    litellm.cache = cache
    try:
        with meter.track("c"):
            served, cached = asyncio.run(twice())
    finally:
        litellm.cache = None
    assert "".join(served) == "".join(cached) == CONTENT
    assert len(srv.requests) == 1
    assert usage_counts(meter.report().node("c").usage) == (2, 100, 7, 0, 0, 0)
    assert meter.report().node("c").usage.cost_usd == pytest.approx(SERVED_COST, rel=1e-12)
    miss, hit = meter.records()
    assert dict(miss.metadata) == {"stream": True}
    assert dict(hit.metadata) == {"stream": True, "cache_hit": True}
    assert (hit.model, hit.provider, hit.total_tokens, hit.cost_usd) == (
        "gpt-4o-mini",
        "openai",
        0,
        0.0,
    )


# -- responses that carry no usage ---------------------------------------------------------


def _call(mode: str, name: str, **kwargs: Any) -> Any:
    if mode == "sync":
        return getattr(litellm, name)(**kwargs)

    async def call() -> Any:
        return await getattr(litellm, "a" + name)(**kwargs)

    return asyncio.run(call())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_chat_answer_without_usage_is_estimated_and_priced(mode: str, bare: FakeOpenAI) -> None:
    """No usage sent, twice: 2 calls of 8 in ("hi") / 4 out ("one two three four"), $7.2e-6."""
    meter = tm.Meter(keep_records=True)
    with meter.track("c"):
        for _ in range(2):
            reply = _call(mode, "completion", **_chat(bare))
            assert reply.choices[0].message.content == CONTENT
    u = meter.report().node("c").usage
    assert usage_counts(u) == (2, 16, 8, 2, 0, 0)
    assert u.cost_usd == pytest.approx(2 * (8 * 1.5e-7 + 4 * 6e-7), rel=1e-12)
    assert [dict(r.metadata) for r in meter.records()] == [{"usage_missing": True}] * 2


def test_plain_answers_without_usage_are_estimated_where_queued_answers_would_be(
    bare: FakeOpenAI,
) -> None:
    """A served call, then 2 without usage (queued if plain): 100+16 in, 7+8 out, 2 estimated."""
    served = FakeOpenAI(usage={"prompt": 100, "completion": 7}, content=CONTENT)
    with served, tm.track("q"):
        litellm.completion(**_chat(served))
        for _ in range(2):
            litellm.completion(**_chat(bare))
    u = tm.report().node("q").usage
    assert usage_counts(u) == (3, 116, 15, 2, 0, 0)
    assert u.cost_usd == pytest.approx(SERVED_COST + 2 * (8 * 1.5e-7 + 4 * 6e-7), rel=1e-12)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_other_kinds_without_usage_are_estimated_and_priced(mode: str, bare: FakeOpenAI) -> None:
    """No usage sent: text 1 in / 4 out, embedding 2 in, Responses 1 in / 4 out; each priced."""
    meter = tm.Meter(keep_records=True)
    base = {"api_base": bare.base_url + "/v1", "api_key": "sk-fake"}
    with meter.track("text"):
        _call(mode, "text_completion", model="openai/gpt-3.5-turbo-instruct", prompt="hi", **base)
    with meter.track("embedding"):
        _call(mode, "embedding", model="openai/text-embedding-3-small", input=["hi there"], **base)
    with meter.track("responses"):
        _call(mode, "responses", model="openai/gpt-4o-mini", input="hi", **base)
    rep = meter.report()
    text, embedding, responses = (rep.node(n).usage for n in ("text", "embedding", "responses"))
    # gpt-3.5-turbo-instruct: $1.5e-6 in, $2e-6 out; text-embedding-3-small: $2e-8 in.
    assert usage_counts(text) == (1, 1, 4, 1, 0, 0)
    assert text.cost_usd == pytest.approx(1 * 1.5e-6 + 4 * 2e-6, rel=1e-12)
    assert usage_counts(embedding) == (1, 2, 0, 1, 0, 0)
    assert embedding.cost_usd == pytest.approx(2 * 2e-8, rel=1e-12)
    assert usage_counts(responses) == (1, 1, 4, 1, 0, 0)
    assert responses.cost_usd == pytest.approx(1 * 1.5e-7 + 4 * 6e-7, rel=1e-12)


def test_an_unknown_model_without_usage_is_estimated_and_unpriced(bare: FakeOpenAI) -> None:
    """A model LiteLLM has no price for, no usage sent: 8 in / 4 out estimated, unpriced, not $0."""
    with tm.track("local"):
        litellm.completion(**_chat(bare, model="openai/acme-local-1"))
    u = tm.report().node("local").usage
    assert usage_counts(u) == (1, 8, 4, 1, 0, 1)
    assert (u.priced_calls, u.cost_usd) == (0, 0.0)


def test_a_mock_answer_with_usage_none_is_priced_from_its_estimate() -> None:
    """A mock answer with usage None: 8 in ("hi") / 2 out ("ok fine") estimated, $2.4e-6."""
    answer = litellm.ModelResponse(
        model="gpt-4o-mini", choices=[{"message": {"role": "assistant", "content": "ok fine"}}]
    )
    answer.usage = None
    with tm.track("mock"):
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response=answer)
    u = tm.report().node("mock").usage
    assert usage_counts(u) == (1, 8, 2, 1, 0, 0)
    assert u.cost_usd == pytest.approx(8 * 1.5e-7 + 2 * 6e-7, rel=1e-12)


# -- text completion streams ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_text_completion_stream_is_recorded_when_read_with_its_text(
    mode: str, srv: FakeOpenAI
) -> None:
    """text_completion(stream=True): nothing until read, then 1 call of 1 in / 4 out estimated."""
    meter = tm.Meter(keep_records=True)
    kwargs = {
        "model": "openai/gpt-3.5-turbo-instruct",
        "prompt": "hi",
        "stream": True,
        "api_base": srv.base_url + "/v1",
        "api_key": "sk-fake",
    }

    async def read() -> str:
        if mode == "sync":
            stream = litellm.text_completion(**kwargs)
            assert meter.report().node("t").usage.calls == 0
            return "".join(c.choices[0].text or "" for c in stream)
        stream = await litellm.atext_completion(**kwargs)
        assert meter.report().node("t").usage.calls == 0
        return "".join([c.choices[0].text or "" async for c in stream])

    with meter.track("t"):
        text = asyncio.run(read())
    assert text == CONTENT
    u = meter.report().node("t").usage
    # The prompt "hi" (1), the text "one two three four" (4), at $1.5e-6 and $2e-6 a token.
    assert usage_counts(u) == (1, 1, 4, 1, 0, 0)
    assert u.cost_usd == pytest.approx(1 * 1.5e-6 + 4 * 2e-6, rel=1e-12)
    [rec] = meter.records()
    assert (rec.kind, dict(rec.metadata)) == ("text_completion", {"stream": True})


def test_a_text_completion_stream_with_a_usage_chunk_asked_for_records_the_served_usage(
    srv: FakeOpenAI,
) -> None:
    """text_completion(stream=True, include_usage): 1 call of the served 100 in / 7 out, exact."""
    with tm.track("t"):
        stream = litellm.text_completion(
            model="openai/gpt-3.5-turbo-instruct",
            prompt="hi",
            stream=True,
            stream_options={"include_usage": True},
            api_base=srv.base_url + "/v1",
            api_key="sk-fake",
        )
        chunks = list(stream)
    assert chunks[-1].usage.prompt_tokens == 100
    u = tm.report().node("t").usage
    assert usage_counts(u) == (1, 100, 7, 0, 0, 0)
    assert u.cost_usd == pytest.approx(100 * 1.5e-6 + 7 * 2e-6, rel=1e-12)


def test_a_text_completion_stream_dropped_unfinished_is_one_estimated_call(
    srv: FakeOpenAI,
) -> None:
    """Two chunks read, then dropped: once collected, 1 call of 1 in / 3 out ("one two ")."""
    with tm.track("t"):
        stream = litellm.text_completion(
            model="openai/gpt-3.5-turbo-instruct",
            prompt="hi",
            stream=True,
            api_base=srv.base_url + "/v1",
            api_key="sk-fake",
        )
        next(stream), next(stream)
        del stream
    for _ in range(300):  # LiteLLM's logging pool may hold the stream a moment
        gc.collect()
        if tm.report().node("t").usage.calls:
            break
        time.sleep(0.01)
    u = tm.report().node("t").usage
    assert usage_counts(u) == (1, 1, 3, 1, 0, 0)  # "one", " two", " "
    assert u.cost_usd == pytest.approx(1 * 1.5e-6 + 3 * 2e-6, rel=1e-12)
