"""LiteLLM attribution at the edges: cached streams, responses that carry no usage.

Each call lands once, with the numbers the provider served or, where it served none,
LiteLLM's estimate priced from its tokens: never 0 tokens and $0 for a call that ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import litellm
import pytest

import tokenmeter as tm
from tests.fakeproviders import FakeOpenAI, block_external_network

MSGS = [{"role": "user", "content": "hi"}]
CONTENT = "one two three four"
# gpt-4o-mini: $1.5e-7 an input token, $6e-7 an output token; the server's usage: 100 in, 7 out.
SERVED_COST = 100 * 1.5e-7 + 7 * 6e-7


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(usage={"prompt": 100, "completion": 7}, content=CONTENT) as srv:
        yield srv


@pytest.fixture
def srv(_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    _server.clear()
    with block_external_network() as attempted:
        yield _server
    assert attempted == []


def _chat(srv: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "api_base": srv.base_url + "/v1",
        "api_key": "sk-fake",
        "messages": MSGS,
        **extra,
    }


def _usage(u: tm.Usage) -> tuple[int, int, int, int, int, int]:
    """(calls, input, output, estimated, failed, unpriced)."""
    return (
        u.calls,
        u.input_tokens,
        u.output_tokens,
        u.estimated_calls,
        u.failed_calls,
        u.unpriced_calls,
    )


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
    assert _usage(meter.report().node("c").usage) == (2, 100, 7, 0, 0, 0)
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
