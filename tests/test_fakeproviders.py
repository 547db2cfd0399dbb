"""The fake provider servers speak real wire formats: LiteLLM parses their usage exactly."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from support.versions import CUT_STREAM_ERROR, OPENAI_ROLE_CHUNK, pixel_price

import tokenmeter as tm
from tests.fakeproviders import (
    AnthropicUsage,
    ExternalNetworkError,
    FakeAnthropic,
    FakeCohere,
    FakeOpenAI,
    block_external_network,
    fake_anthropic,
    fake_openai,
    no_external_network,
)

__all__ = ["fake_anthropic", "fake_openai", "no_external_network"]

MESSAGES = [{"role": "user", "content": "hi"}]
OPENAI_USAGE = {"prompt": 1000, "completion": 200, "cached": 400, "reasoning": 50}
ANTHROPIC_USAGE = {"input": 1000, "output": 200, "cache_read": 500, "cache_creation": 300}
# gpt-4o-mini: 600 uncached * 1.5e-7 + 400 cached * 7.5e-8 + 200 output * 6e-7
GPT_4O_MINI_COST = 0.00024
# claude-sonnet-4-5: 1000 * 3e-6 + 500 * 3e-7 + 300 * 3.75e-6 + 200 * 1.5e-5
CLAUDE_SONNET_45_COST = 0.007275


@pytest.fixture
def openai_srv(no_external_network: list[str]) -> Iterator[FakeOpenAI]:
    """A FakeOpenAI serving OPENAI_USAGE, with external network blocked."""
    with FakeOpenAI(usage=OPENAI_USAGE, content="one two three four") as srv:
        yield srv
    assert no_external_network == []


@pytest.fixture
def anthropic_srv(no_external_network: list[str]) -> Iterator[FakeAnthropic]:
    """A FakeAnthropic serving ANTHROPIC_USAGE, with external network blocked."""
    with FakeAnthropic(usage=ANTHROPIC_USAGE, content="one two three four") as srv:
        yield srv
    assert no_external_network == []


def _openai_kwargs(srv: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "api_base": srv.base_url + "/v1",
        "api_key": "sk-fake",
        "messages": MESSAGES,
        **extra,
    }


def _anthropic_kwargs(srv: FakeAnthropic, **extra: Any) -> dict[str, Any]:
    return {
        "model": "anthropic/claude-sonnet-4-5",
        "api_base": srv.base_url,
        "api_key": "sk-fake",
        "messages": MESSAGES,
        **extra,
    }


def test_openai_non_stream_usage_and_cost(openai_srv: FakeOpenAI) -> None:
    """A plain completion returns the served usage and LiteLLM prices it (cached discount)."""
    response = litellm.completion(**_openai_kwargs(openai_srv))
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1000, 200, 1200)
    assert usage.prompt_tokens_details.cached_tokens == 400
    assert usage.completion_tokens_details.reasoning_tokens == 50
    assert response.choices[0].message.content == "one two three four"
    assert response._hidden_params["custom_llm_provider"] == "openai"
    assert response._hidden_params["response_cost"] == pytest.approx(GPT_4O_MINI_COST, rel=1e-9)
    [request] = openai_srv.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.json["model"] == "gpt-4o-mini"
    assert request.client_host == "127.0.0.1"


def test_openai_stream_with_include_usage(openai_srv: FakeOpenAI) -> None:
    """With include_usage the last chunk carries the exact served usage."""
    stream = litellm.completion(
        **_openai_kwargs(openai_srv, stream=True, stream_options={"include_usage": True})
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (1000, 200)
    assert usage.prompt_tokens_details.cached_tokens == 400
    assert usage.completion_tokens_details.reasoning_tokens == 50
    assert openai_srv.requests[0].json["stream_options"] == {"include_usage": True}


def test_openai_stream_without_include_usage_is_estimated(openai_srv: FakeOpenAI) -> None:
    """Without include_usage LiteLLM sends no stream_options and only estimates usage."""
    tm.request_stream_usage(False)  # else tokenmeter asks for the usage chunk itself
    try:
        chunks = list(litellm.completion(**_openai_kwargs(openai_srv, stream=True)))
    finally:
        tm.request_stream_usage(True)
    assert "stream_options" not in openai_srv.requests[0].json
    assert getattr(chunks[-1], "usage", None) is None
    estimated = chunks[-1]._hidden_params["usage"]
    assert (estimated.prompt_tokens, estimated.completion_tokens) != (1000, 200)


async def test_openai_async_stream_with_include_usage(openai_srv: FakeOpenAI) -> None:
    """acompletion streams the same final usage chunk."""
    stream = await litellm.acompletion(
        **_openai_kwargs(openai_srv, stream=True, stream_options={"include_usage": True})
    )
    chunks = [chunk async for chunk in stream]
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (1000, 200)


def test_openai_embeddings_and_text_completion(openai_srv: FakeOpenAI) -> None:
    """Embeddings and text completions parse the served usage and are priced."""
    embedding = litellm.embedding(
        model="openai/text-embedding-3-small",
        input=["a", "b"],
        api_base=openai_srv.base_url + "/v1",
        api_key="sk-fake",
    )
    assert embedding.usage is not None
    assert (embedding.usage.prompt_tokens, embedding.usage.total_tokens) == (1000, 1000)
    assert len(embedding.data) == 2
    assert embedding._hidden_params["response_cost"] == pytest.approx(2e-05, rel=1e-9)
    text = litellm.text_completion(
        model="openai/gpt-3.5-turbo-instruct",
        prompt="hi",
        api_base=openai_srv.base_url + "/v1",
        api_key="sk-fake",
    )
    assert (text.usage.prompt_tokens, text.usage.completion_tokens) == (1000, 200)
    assert text.choices[0].text == "one two three four"
    assert [r.path for r in openai_srv.requests] == ["/v1/embeddings", "/v1/completions"]


def test_anthropic_non_stream_usage_with_cache_fields(anthropic_srv: FakeAnthropic) -> None:
    """LiteLLM folds cache reads and writes into prompt_tokens and keeps them separately too."""
    response = litellm.completion(**_anthropic_kwargs(anthropic_srv))
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1800, 200, 2000)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (500, 300)
    assert usage.prompt_tokens_details.cached_tokens == 500
    assert response._hidden_params["response_cost"] == pytest.approx(
        CLAUDE_SONNET_45_COST, rel=1e-9
    )
    [request] = anthropic_srv.requests
    assert request.path == "/v1/messages"
    assert request.json["model"] == "claude-sonnet-4-5"


def test_anthropic_stream_usage_with_cache_fields(anthropic_srv: FakeAnthropic) -> None:
    """The message_start/message_delta usage becomes the final chunk's usage."""
    stream = litellm.completion(
        **_anthropic_kwargs(anthropic_srv, stream=True, stream_options={"include_usage": True})
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (1800, 200)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (500, 300)
    assert anthropic_srv.requests[0].json["stream"] is True


def test_openai_429_then_success_with_num_retries(openai_srv: FakeOpenAI) -> None:
    """num_retries=3 becomes the OpenAI SDK's max_retries=3: 5 x 429 need a litellm retry too."""
    openai_srv.fail_next(2, status=429)
    response = litellm.completion(**_openai_kwargs(openai_srv, num_retries=3))
    assert response.usage.prompt_tokens == 1000
    # The OpenAI SDK retried in place (one litellm call, three HTTP requests).
    retry_counts = [r.headers.get("x-stainless-retry-count") for r in openai_srv.requests]
    assert retry_counts == ["0", "1", "2"]
    openai_srv.clear()
    openai_srv.fail_next(5, status=429)
    response = litellm.completion(**_openai_kwargs(openai_srv, num_retries=3))
    assert response.usage.prompt_tokens == 1000
    # SDK: 4 attempts (max_retries=3), then litellm's completion_with_retries with max_retries=0.
    retry_counts = [r.headers.get("x-stainless-retry-count") for r in openai_srv.requests]
    assert retry_counts == ["0", "1", "2", "3", "0", "0"]


def test_openai_429_without_num_retries_uses_sdk_default(openai_srv: FakeOpenAI) -> None:
    """Without num_retries the OpenAI SDK still retries twice, then RateLimitError."""
    openai_srv.fail_next(3, status=429)
    with pytest.raises(litellm.exceptions.RateLimitError):
        litellm.completion(**_openai_kwargs(openai_srv))
    assert len(openai_srv.requests) == 3


def test_anthropic_429_then_success_with_num_retries(anthropic_srv: FakeAnthropic) -> None:
    """Anthropic has no SDK retries: one 429 fails, num_retries=1 makes a second request."""
    anthropic_srv.fail_next(1, status=429)
    with pytest.raises(litellm.exceptions.RateLimitError):
        litellm.completion(**_anthropic_kwargs(anthropic_srv))
    assert len(anthropic_srv.requests) == 1
    anthropic_srv.fail_next(1, status=429)
    response = litellm.completion(**_anthropic_kwargs(anthropic_srv, num_retries=1))
    assert response.usage.completion_tokens == 200
    assert len(anthropic_srv.requests) == 3


def test_500_maps_to_internal_server_error(openai_srv: FakeOpenAI) -> None:
    """A scripted 500 with max_retries=0 surfaces as litellm.exceptions.InternalServerError."""
    openai_srv.fail_next(1, status=500)
    with pytest.raises(litellm.exceptions.InternalServerError):
        litellm.completion(**_openai_kwargs(openai_srv, max_retries=0))
    assert len(openai_srv.requests) == 1


def test_stream_broken_midway_raises(openai_srv: FakeOpenAI) -> None:
    """A stream cut after 3 events raises after yielding 3 chunks (2 on LiteLLM 1.80)."""
    openai_srv.break_next_stream(3)
    stream = litellm.completion(**_openai_kwargs(openai_srv, stream=True))
    received: list[Any] = []
    with pytest.raises(CUT_STREAM_ERROR):
        received.extend(stream)
    assert len(received) == 2 + OPENAI_ROLE_CHUNK


def test_raw_wire_format_openai_sse() -> None:
    """The SSE body has role, content, finish and usage chunks, then [DONE]."""
    with FakeOpenAI(usage={"prompt": 7, "completion": 3}, content="a b") as srv:
        body = json.dumps(
            {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
        ).encode()
        request = urllib.request.Request(
            srv.base_url + "/v1/chat/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            lines = [ln for ln in response.read().decode().splitlines() if ln]
    assert lines[-1] == "data: [DONE]"
    payloads = [json.loads(ln.removeprefix("data: ")) for ln in lines[:-1]]
    assert [p["choices"][0]["delta"] for p in payloads[:3]] == [
        {"role": "assistant", "content": "", "refusal": None},
        {"content": "a "},
        {"content": "b"},
    ]
    assert payloads[3]["choices"][0]["finish_reason"] == "stop"
    assert payloads[4]["choices"] == []
    assert payloads[4]["usage"]["prompt_tokens"] == 7
    assert payloads[4]["usage"]["completion_tokens"] == 3
    assert all(p["usage"] is None for p in payloads[:4])


def test_raw_wire_format_anthropic_sse_and_errors() -> None:
    """Anthropic SSE carries usage in message_start and message_delta; errors use its schema."""
    usage = AnthropicUsage(input=4, output=9, cache_read=2, cache_creation=1)
    with FakeAnthropic(usage=usage, content="x") as srv:
        body = json.dumps({"model": "claude-sonnet-4-5", "stream": True}).encode()
        request = urllib.request.Request(srv.base_url + "/v1/messages", data=body)
        with urllib.request.urlopen(request, timeout=5) as response:
            lines = response.read().decode().splitlines()
        srv.fail_next(1, status=529)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        error = json.loads(caught.value.read())
    events = [ln.removeprefix("event: ") for ln in lines if ln.startswith("event: ")]
    assert events == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    data = [json.loads(ln.removeprefix("data: ")) for ln in lines if ln.startswith("data: ")]
    assert data[0]["message"]["usage"] == {
        "input_tokens": 4,
        "output_tokens": 1,
        "cache_read_input_tokens": 2,
        "cache_creation_input_tokens": 1,
    }
    assert data[5]["usage"] == {"output_tokens": 9}
    assert caught.value.code == 529
    assert error == {"type": "error", "error": {"type": "overloaded_error", "message": "fake"}}


def test_block_external_network_refuses_other_hosts() -> None:
    """The network guard refuses non-loopback DNS and connects but lets 127.0.0.1 through."""
    with block_external_network() as attempted, FakeOpenAI() as srv:
        with pytest.raises(ExternalNetworkError):
            urllib.request.urlopen("http://example.invalid/", timeout=1)
        request = urllib.request.Request(srv.base_url + "/v1/embeddings", data=b'{"input": "x"}')
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["usage"] == {"prompt_tokens": 10, "total_tokens": 10}
    assert attempted == ["example.invalid"]


def test_module_fixtures_start_servers(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    """The importable fixtures yield running servers on distinct loopback ports."""
    assert fake_openai.base_url.startswith("http://127.0.0.1:")
    assert fake_anthropic.base_url.startswith("http://127.0.0.1:")
    assert fake_openai.port != fake_anthropic.port
    assert fake_openai.requests == []


def test_openai_transcription_multipart_and_duration(openai_srv: FakeOpenAI) -> None:
    """A transcription posts multipart form data; verbose_json has the duration LiteLLM prices."""
    audio = io.BytesIO(b"RIFF fake wav")
    audio.name = "clip.wav"
    result = litellm.transcription(
        model="whisper-1", file=audio, api_base=openai_srv.base_url + "/v1", api_key="sk-fake"
    )
    assert result.text == "one two three four"
    assert result.duration == 12.5
    assert result._hidden_params["response_cost"] == pytest.approx(0.00125, rel=1e-9)
    [request] = openai_srv.requests
    assert request.path == "/v1/audio/transcriptions"
    assert request.json == {
        "model": "whisper-1",
        "response_format": "verbose_json",
        "file": {"filename": "clip.wav", "size": 13},
    }


def test_openai_images_and_responses(openai_srv: FakeOpenAI) -> None:
    """Images carry gpt-image token usage; the Responses API uses input/output token naming."""
    base = {"api_base": openai_srv.base_url + "/v1", "api_key": "sk-fake"}
    image = litellm.image_generation(model="openai/gpt-image-1", prompt="a cat", **base)
    assert image.data[0].url == "https://images.invalid/fake0.png"
    assert (image.usage.input_tokens, image.usage.output_tokens) == (1000, 200)
    # LiteLLM 1.80 prices gpt-image-1 per pixel, not by its tokens.
    image_cost = pixel_price("gpt-image-1", "medium") or 0.013
    assert image._hidden_params["response_cost"] == pytest.approx(image_cost, rel=1e-9)
    response = litellm.responses(model="openai/gpt-4o-mini", input="hi", **base)
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens) == (1000, 200)
    assert usage.input_tokens_details.cached_tokens == 400
    assert usage.output_tokens_details.reasoning_tokens == 50
    assert response._hidden_params["response_cost"] == pytest.approx(GPT_4O_MINI_COST, rel=1e-9)
    paths = [r.path for r in openai_srv.requests]
    assert paths == ["/v1/images/generations", "/v1/responses"]


def test_cohere_rerank(no_external_network: list[str]) -> None:
    """LiteLLM's Cohere rerank posts to /v2/rerank and prices the billed search unit."""
    with FakeCohere(search_units=1, relevance=(0.2, 0.7, 0.1)) as srv:
        result = litellm.rerank(
            model="cohere/rerank-english-v3.0",
            query="q",
            documents=["a", "b", "c"],
            top_n=2,
            api_base=srv.base_url,
            api_key="fake",
        )
        [request] = srv.requests
    assert [(r["index"], r["relevance_score"]) for r in result.results] == [(1, 0.7), (0, 0.2)]
    assert result.meta["billed_units"] == {"search_units": 1}
    assert result._hidden_params["response_cost"] == pytest.approx(0.002, rel=1e-9)
    assert request.path == "/v2/rerank"
    assert (request.json["query"], request.json["top_n"]) == ("q", 2)
    assert no_external_network == []
