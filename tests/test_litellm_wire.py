"""LiteLLM attribution on the wire: real LiteLLM parsing, streaming, retries and pricing.

Every test talks to the fake provider servers on 127.0.0.1 (tests/fakeproviders.py), or to
LiteLLM's mock_response where LiteLLM supports it, with every other host blocked.

What one record holds, per call kind (checked below with exact numbers):

- completion / acompletion (and streams): input (cached included), cache read, cache write,
  output (reasoning included), reasoning; cost = LiteLLM's response_cost.
- text_completion: the same token fields (OpenAI wire usage); cost = LiteLLM's response_cost.
- embedding: input tokens only; cost = LiteLLM's response_cost.
- image_generation: gpt-image-* token usage (input, output) and its cost; a model LiteLLM
  cannot price (dall-e-3 in this map, any mock image) is unpriced with 0 tokens.
- transcription: no tokens; cost = LiteLLM's per-second price x the served ``duration``
  (the seconds themselves are not kept on the record).
- rerank: no tokens; cost = LiteLLM's per-query price (Cohere billed search units).
- responses: Responses API usage (input/output naming, cached and reasoning details) mapped
  to the same token fields; cost = LiteLLM's response_cost.
- a cache hit: tokens 0, cost $0 (priced, not unpriced), metadata ``cache_hit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import operator
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import litellm
import pytest

try:
    from litellm.router_python_host import PythonHost
except ImportError:  # LiteLLM before 1.109: the Router sleeps in its own code
    PythonHost = object

from support.versions import CUT_STREAM_ERROR, OPENAI_ROLE_CHUNK, pixel_price

import tokenmeter as tm
from tests.fakeproviders import (
    FakeAnthropic,
    FakeCohere,
    FakeOpenAI,
    block_external_network,
)
from tokenmeter._acc import ACC_FIELDS, COST

T = TypeVar("T")

MSGS = [{"role": "user", "content": "hi"}]
CONTENT = "one two three four"
OPENAI_USAGE = {"prompt": 1000, "completion": 200, "cached": 400, "reasoning": 50}
ANTHROPIC_USAGE = {"input": 1000, "output": 200, "cache_read": 500, "cache_creation": 300}
# gpt-4o-mini: 600 uncached * 1.5e-7 + 400 cached * 7.5e-8 + 200 output * 6e-7
GPT_4O_MINI_COST = 0.00024
# claude-sonnet-4-5: 1000 * 3e-6 + 500 cache read * 3e-7 + 300 cache write * 3.75e-6 + 200 * 1.5e-5
CLAUDE_COST = 0.007275
# (calls, input, cache_read, cache_write, output, reasoning) as served, after LiteLLM's parsing.
OPENAI_TOKENS = (1, 1000, 400, 0, 200, 50)
ANTHROPIC_TOKENS = (1, 1800, 500, 300, 200, 0)
# whisper-1: $0.0001 per second x the 12.5 s the fake server reports.
WHISPER_COST = 0.00125
# rerank-english-v3.0: $0.002 per query (one billed search unit).
RERANK_COST = 0.002


#: A Usage's (calls, input, cache_read, cache_write, output, reasoning), as the tuples above.
_tokens = operator.attrgetter(*ACC_FIELDS[:COST])


def _flags(u: tm.Usage) -> tuple[int, int, int]:
    """(failed, estimated, unpriced) calls."""
    return (u.failed_calls, u.estimated_calls, u.unpriced_calls)


# -- servers and the network block ------------------------------------------------------


@pytest.fixture(scope="module")
def _openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(usage=OPENAI_USAGE, content=CONTENT) as srv:
        yield srv


@pytest.fixture(scope="module")
def _anthropic_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(usage=ANTHROPIC_USAGE, content=CONTENT) as srv:
        yield srv


@pytest.fixture(scope="module")
def _cohere_server() -> Iterator[FakeCohere]:
    with FakeCohere(search_units=1) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _offline() -> Iterator[None]:
    """Every test: any DNS lookup or connect to a host other than loopback fails the test."""
    with block_external_network() as attempted:
        yield
    assert attempted == []


@pytest.fixture
def oai(_openai_server: FakeOpenAI) -> FakeOpenAI:
    """The module's FakeOpenAI, with no requests or scripted failures left from other tests."""
    _openai_server.clear()
    return _openai_server


@pytest.fixture
def anth(_anthropic_server: FakeAnthropic) -> FakeAnthropic:
    """The module's FakeAnthropic, cleared."""
    _anthropic_server.clear()
    return _anthropic_server


@pytest.fixture
def cohere(_cohere_server: FakeCohere) -> FakeCohere:
    """The module's FakeCohere, cleared."""
    _cohere_server.clear()
    return _cohere_server


@pytest.fixture
def no_router_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Router retries sleep 0 (LiteLLM's backoff adds up to 0.75 s of jitter); yields the asks."""
    asked: list[float] = []

    async def sleep(self: Any, seconds: float) -> None:
        asked.append(seconds)

    def sleep_sync(self: Any, seconds: float) -> None:
        asked.append(seconds)

    for name, fn in (("sleep", sleep), ("sleep_sync", sleep_sync)):
        if hasattr(PythonHost, name):  # each as this LiteLLM has it
            monkeypatch.setattr(PythonHost, name, fn)
    return asked


def _openai(srv: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "api_base": srv.base_url + "/v1",
        "api_key": "sk-fake",
        "messages": MSGS,
        **extra,
    }


def _anthropic(srv: FakeAnthropic, **extra: Any) -> dict[str, Any]:
    return {
        "model": "anthropic/claude-sonnet-4-5",
        "api_base": srv.base_url,
        "api_key": "sk-fake",
        "messages": MSGS,
        **extra,
    }


def _run(mode: str, sync: Callable[[], T], coro: Callable[[], Awaitable[T]]) -> T:
    """Call ``sync()`` or run ``coro()`` on a fresh loop (its task inherits the current scope)."""
    if mode == "sync":
        return sync()

    async def main() -> T:
        return await coro()

    return asyncio.run(main())


def _complete(mode: str, **kwargs: Any) -> Any:
    return _run(mode, lambda: litellm.completion(**kwargs), lambda: litellm.acompletion(**kwargs))


def _stream(mode: str, **kwargs: Any) -> list[Any]:
    """Make a streaming call and read it to the end; the chunks the caller saw."""

    async def consume() -> list[Any]:
        stream = await litellm.acompletion(stream=True, **kwargs)
        return [chunk async for chunk in stream]

    return _run(mode, lambda: list(litellm.completion(stream=True, **kwargs)), consume)


@contextlib.contextmanager
def _uninstrumented() -> Iterator[None]:
    tm.uninstrument()
    try:
        yield
    finally:
        tm.instrument()


@contextlib.contextmanager
def _stream_usage_off() -> Iterator[None]:
    tm.request_stream_usage(False)
    try:
        yield
    finally:
        tm.request_stream_usage(True)


def _chunk_view(chunks: list[Any]) -> list[dict[str, Any]]:
    """What the caller sees of each chunk, minus the per-response id and timestamp."""
    return [c.model_dump(exclude={"id", "created"}) for c in chunks]


def _server(provider: str, oai: FakeOpenAI, anth: FakeAnthropic) -> FakeOpenAI | FakeAnthropic:
    return oai if provider == "openai" else anth


def _kwargs(provider: str, oai: FakeOpenAI, anth: FakeAnthropic, **extra: Any) -> dict[str, Any]:
    return _openai(oai, **extra) if provider == "openai" else _anthropic(anth, **extra)


EXPECTED = {
    "openai": (OPENAI_TOKENS, GPT_4O_MINI_COST, "gpt-4o-mini"),
    "anthropic": (ANTHROPIC_TOKENS, CLAUDE_COST, "claude-sonnet-4-5"),
}

# -- 1. JSON responses ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_openai_json_usage_lands_exactly(mode: str, oai: FakeOpenAI) -> None:
    """OpenAI usage 1000 (400 cached) / 200 (50 reasoning) lands as is, cost $0.00024."""
    with tm.track("agent"):
        response = _complete(mode, **_openai(oai))
    rep = tm.report()
    u = rep.node("agent").self_usage
    assert _tokens(u) == OPENAI_TOKENS
    assert u.cost_usd == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert _flags(u) == (0, 0, 0)
    assert rep.by_provider() == {"openai": u}
    assert rep.by_model() == {"gpt-4o-mini": u}
    assert rep.total == u
    assert response.choices[0].message.content == CONTENT
    assert len(oai.requests) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_anthropic_json_usage_lands_exactly(mode: str, anth: FakeAnthropic) -> None:
    """Anthropic 1000 in + 500 cache read + 300 cache write / 200 out: input 1800, $0.007275."""
    with tm.track("agent"):
        _complete(mode, **_anthropic(anth))
    rep = tm.report()
    u = rep.node("agent").self_usage
    assert _tokens(u) == ANTHROPIC_TOKENS
    assert u.cost_usd == pytest.approx(CLAUDE_COST, rel=1e-12)
    assert _flags(u) == (0, 0, 0)
    assert rep.by_provider() == {"anthropic": u}
    assert rep.by_model() == {"claude-sonnet-4-5": u}
    assert [r.path for r in anth.requests] == ["/v1/messages"]


# -- 2. Streams -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_stream_exact_usage_and_unchanged_chunks(
    provider: str, mode: str, oai: FakeOpenAI, anth: FakeAnthropic
) -> None:
    """Default stream: exact provider usage recorded; the caller sees the chunks it would anyway."""
    srv = _server(provider, oai, anth)
    kwargs = _kwargs(provider, oai, anth)
    with _uninstrumented():
        plain = _stream(mode, **kwargs)
    with tm.track("s"):
        chunks = _stream(mode, **kwargs)
    assert len(chunks) == len(plain) == (5 + OPENAI_ROLE_CHUNK if provider == "openai" else 5)
    assert _chunk_view(chunks) == _chunk_view(plain)
    assert all(getattr(c, "usage", None) is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == CONTENT
    toks, cost, model = EXPECTED[provider]
    rep = tm.report()
    u = rep.node("s").self_usage
    assert _tokens(u) == toks
    assert u.cost_usd == pytest.approx(cost, rel=1e-12)
    assert _flags(u) == (0, 0, 0)
    assert list(rep.by_model()) == [model]
    assert list(rep.by_provider()) == [provider]
    plain_request, request = srv.requests
    assert "stream_options" not in plain_request.json
    if provider == "openai":
        assert request.json["stream_options"] == {"include_usage": True}
    else:  # Anthropic always streams usage; LiteLLM sends it no stream_options.
        assert "stream_options" not in request.json


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_openai_stream_usage_off_is_litellms_estimate(mode: str, oai: FakeOpenAI) -> None:
    """Usage request off: no stream_options sent; LiteLLM's estimate 8 in / 4 out, flagged."""
    with _stream_usage_off(), tm.track("s"):
        chunks = _stream(mode, **_openai(oai))
    assert "stream_options" not in oai.requests[0].json
    assert len(chunks) == 5 + OPENAI_ROLE_CHUNK
    litellms = chunks[-1]._hidden_params["usage"]  # LiteLLM's own estimate for this stream
    u = tm.report().node("s").self_usage
    if litellms.prompt_tokens:  # LiteLLM 1.108 and older leave it at 0: tokenmeter counts alike
        assert _tokens(u) == (1, litellms.prompt_tokens, 0, 0, litellms.completion_tokens, 0)
    assert _tokens(u) == (1, 8, 0, 0, 4, 0)
    assert u.cost_usd == pytest.approx(8 * 1.5e-7 + 4 * 6e-7, rel=1e-12)
    assert _flags(u) == (0, 1, 0)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_anthropic_stream_usage_off_is_still_exact(mode: str, anth: FakeAnthropic) -> None:
    """Usage request off, Anthropic: it streams usage anyway, so 1800 / 200 exact, not estimated."""
    with _stream_usage_off(), tm.track("s"):
        chunks = _stream(mode, **_anthropic(anth))
    assert len(chunks) == 5
    assert "stream_options" not in anth.requests[0].json
    u = tm.report().node("s").self_usage
    assert _tokens(u) == ANTHROPIC_TOKENS
    assert u.cost_usd == pytest.approx(CLAUDE_COST, rel=1e-12)
    assert _flags(u) == (0, 0, 0)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_stream_users_own_include_usage_is_kept(
    provider: str, mode: str, oai: FakeOpenAI, anth: FakeAnthropic
) -> None:
    """The user's own include_usage: exact usage recorded; the user still gets its usage chunk."""
    kwargs = _kwargs(provider, oai, anth, stream_options={"include_usage": True})
    with _uninstrumented():
        plain = _stream(mode, **kwargs)
    with tm.track("s"):
        chunks = _stream(mode, **kwargs)
    assert len(chunks) == len(plain) == (6 + OPENAI_ROLE_CHUNK if provider == "openai" else 6)
    assert _chunk_view(chunks) == _chunk_view(plain)
    toks, cost, _ = EXPECTED[provider]
    last = chunks[-1].usage
    assert (last.prompt_tokens, last.completion_tokens) == (toks[1], toks[4])
    u = tm.report().node("s").self_usage
    assert _tokens(u) == toks
    assert u.cost_usd == pytest.approx(cost, rel=1e-12)
    assert _flags(u) == (0, 0, 0)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("own_usage", [False, True])
def test_router_stream_exact_usage_and_unchanged_chunks(
    own_usage: bool, mode: str, oai: FakeOpenAI
) -> None:
    """A Router stream: 1 exact call ($0.00024); the caller's chunks are as without tokenmeter."""
    router = litellm.Router(
        model_list=[
            {
                "model_name": "g",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": oai.base_url + "/v1",
                    "api_key": "sk-fake",
                },
            }
        ]
    )
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if own_usage else {}

    async def consume() -> list[Any]:
        stream = await router.acompletion(model="g", messages=MSGS, stream=True, **extra)
        return [chunk async for chunk in stream]

    def read() -> list[Any]:
        return _run(
            mode,
            lambda: list(router.completion(model="g", messages=MSGS, stream=True, **extra)),
            consume,
        )

    with _uninstrumented():
        plain = read()
    with tm.track("rs"):
        chunks = read()
    assert len(chunks) == len(plain) == (6 if own_usage else 5) + OPENAI_ROLE_CHUNK
    assert _chunk_view(chunks) == _chunk_view(plain)
    assert oai.requests[-1].json["stream_options"] == {"include_usage": True}
    u = tm.report().node("rs").self_usage
    assert _tokens(u) == OPENAI_TOKENS
    assert u.cost_usd == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert _flags(u) == (0, 0, 0)


# -- 3. Streams read elsewhere, broken streams ------------------------------------------


def test_stream_read_by_thread_in_other_scope_lands_on_caller(oai: FakeOpenAI) -> None:
    """A stream made in scope A, read by a thread inside scope B: 1 exact call on A, 0 on B."""
    with tm.track("A"):
        stream = litellm.completion(stream=True, **_openai(oai))
    seen: list[Any] = []
    with tm.track("B"):
        reader = threading.Thread(target=lambda: seen.extend(stream))
        reader.start()
        reader.join()
    rep = tm.report()
    assert len(seen) == 5 + OPENAI_ROLE_CHUNK
    assert _tokens(rep.node("A").usage) == OPENAI_TOKENS
    assert rep.node("A").usage.cost_usd == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert rep.node("B").usage.calls == 0
    assert rep.total.calls == 1


async def test_async_stream_read_by_task_in_other_scope_lands_on_caller(oai: FakeOpenAI) -> None:
    """An async stream made in scope A, read by a task inside scope B: 1 exact call on A, 0 on B."""
    with tm.track("A"):
        stream = await litellm.acompletion(stream=True, **_openai(oai))

    async def reader() -> int:
        with tm.track("B"):
            return len([chunk async for chunk in stream])

    assert await asyncio.create_task(reader()) == 5 + OPENAI_ROLE_CHUNK
    rep = tm.report()
    assert _tokens(rep.node("A").usage) == OPENAI_TOKENS
    assert rep.node("B").usage.calls == 0
    assert rep.total.calls == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_broken_stream_is_one_failed_estimated_call(mode: str, oai: FakeOpenAI) -> None:
    """Stream cut after 3 events: same exception, 1 failed call, 8 in / 3 out estimated, once."""

    def read_broken() -> tuple[type[BaseException] | None, str, int, Any]:
        oai.break_next_stream(3)
        received: list[Any] = []
        holder: list[Any] = []

        async def consume() -> None:
            stream = await litellm.acompletion(stream=True, **_openai(oai))
            holder.append(stream)
            async for chunk in stream:
                received.append(chunk)

        def consume_sync() -> None:
            stream = litellm.completion(stream=True, **_openai(oai))
            holder.append(stream)
            received.extend(stream)

        try:
            _run(mode, consume_sync, consume)
        except CUT_STREAM_ERROR as e:
            return type(e), str(e), len(received), holder
        return None, "", len(received), holder

    with _uninstrumented():
        plain_type, plain_message, plain_count, _ = read_broken()
    meter = tm.Meter(keep_records=True)
    with meter.track("s"):
        err_type, message, count, holder = read_broken()
    assert (err_type, message, count) == (plain_type, plain_message, plain_count)
    u = meter.report().node("s").self_usage
    if plain_type is None:
        # Older LiteLLM (1.90.7, for one) ends a cut async stream as if it were complete (a
        # finish chunk, no error), without tokenmeter too: one estimated call, not failed.
        assert (mode, count) == ("async", 3 + OPENAI_ROLE_CHUNK)
        assert _tokens(u) == (1, 8, 0, 0, 3, 0)
        assert u.cost_usd == pytest.approx(8 * 1.5e-7 + 3 * 6e-7, rel=1e-12)
        assert _flags(u) == (0, 1, 0)
        assert [dict(r.metadata) for r in meter.records()] == [{"stream": True}]
        return
    assert count == 2 + OPENAI_ROLE_CHUNK  # the role chunk (none on 1.80), "one ", "two "
    # Estimated: the prompt counted by LiteLLM (8), "one two " (3); no usage chunk arrived.
    assert _tokens(u) == (1, 8, 0, 0, 3, 0)
    assert u.cost_usd == pytest.approx(8 * 1.5e-7 + 3 * 6e-7, rel=1e-12)
    assert _flags(u) == (1, 1, 0)
    [rec] = meter.records()
    assert (rec.failed, rec.estimated, rec.kind) == (True, True, "completion")
    assert rec.metadata["error"] == CUT_STREAM_ERROR.__name__
    holder.clear()
    gc.collect()
    assert meter.report().node("s").self_usage == u
    assert len(meter.records()) == 1


@pytest.mark.parametrize("how", ["close", "gc"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_abandoned_stream_is_one_estimated_call(mode: str, how: str, oai: FakeOpenAI) -> None:
    """Two words read, then closed or dropped: 1 call, 8 in / 3 out estimated, $3e-6, not failed."""
    if how == "close" and not hasattr(litellm.CustomStreamWrapper, "close"):
        pytest.skip("this LiteLLM's streams have no close() (added in 1.107)")
    meter = tm.Meter(keep_records=True)

    def sync() -> None:
        stream = litellm.completion(stream=True, **_openai(oai))
        for _ in range(2 + OPENAI_ROLE_CHUNK):
            next(stream)
        if how == "close":
            stream.close()
            assert len(meter.records()) == 1  # recorded at close, not later
        del stream

    async def concurrent() -> None:
        stream = await litellm.acompletion(stream=True, **_openai(oai))
        for _ in range(2 + OPENAI_ROLE_CHUNK):
            await stream.__anext__()
        if how == "close":
            await stream.aclose()
            assert len(meter.records()) == 1
        del stream

    with meter.track("s"):
        _run(mode, sync, concurrent)
    # A dropped sync stream lives on until LiteLLM's logging pool has run the per-chunk jobs
    # it submitted (bound methods of the stream): it is recorded when it is really collected.
    for _ in range(300):
        gc.collect()
        if meter.records():
            break
        time.sleep(0.01)
    u = meter.report().node("s").self_usage
    assert _tokens(u) == (1, 8, 0, 0, 3, 0)
    assert u.cost_usd == pytest.approx(8 * 1.5e-7 + 3 * 6e-7, rel=1e-12)
    assert _flags(u) == (0, 1, 0)
    [rec] = meter.records()
    assert dict(rec.metadata) == {"stream": True, "abandoned": True}


def test_error_logs_show_the_held_stream(oai: FakeOpenAI) -> None:
    """Where LiteLLM keeps the last stream in litellm.error_logs, it is there while held."""
    stream = litellm.completion(stream=True, **_openai(oai))
    logs = getattr(litellm, "error_logs", {})
    if "original_response" not in logs.get("POST_CALL", {}):
        pytest.skip("this LiteLLM keeps no stream in litellm.error_logs")
    held = logs["POST_CALL"]["original_response"]
    assert (held.model, held.logging_obj.model) == (stream.model, stream.logging_obj.model)
    assert logs["POST_CALL"]["self"].litellm_call_id == stream.logging_obj.litellm_call_id
    assert "".join(c.choices[0].delta.content or "" for c in held) == CONTENT
    assert len(oai.requests) == 1


# -- 4. Retries and fallbacks -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sdk_retries_are_one_call(mode: str, oai: FakeOpenAI) -> None:
    """2 x 429 then 200 with num_retries=3: the OpenAI SDK retries, 3 requests, 1 exact call."""
    oai.fail_next(2, status=429)
    meter = tm.Meter(keep_records=True)
    with meter.track("r"):
        _complete(mode, **_openai(oai, num_retries=3))
    assert [r.headers.get("x-stainless-retry-count") for r in oai.requests] == ["0", "1", "2"]
    u = meter.report().node("r").self_usage
    assert _tokens(u) == OPENAI_TOKENS
    assert u.cost_usd == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert _flags(u) == (0, 0, 0)
    [rec] = meter.records()
    assert "attempts" not in rec.metadata  # the SDK's retries are invisible to LiteLLM


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_litellm_level_retries_are_one_call(mode: str, oai: FakeOpenAI) -> None:
    """5 x 429, num_retries=3: SDK 4 tries + LiteLLM runner 2 = 6 requests, 1 call, attempts 2."""
    oai.fail_next(5, status=429)
    meter = tm.Meter(keep_records=True)
    with meter.track("r"):
        _complete(mode, **_openai(oai, num_retries=3))
    retry_counts = [r.headers.get("x-stainless-retry-count") for r in oai.requests]
    assert retry_counts == ["0", "1", "2", "3", "0", "0"]
    u = meter.report().node("r").self_usage
    assert _tokens(u) == OPENAI_TOKENS
    assert u.cost_usd == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert _flags(u) == (0, 0, 0)
    [rec] = meter.records()
    # attempts counts LiteLLM entry points the call went through: the call, then its
    # (a)completion_with_retries runner; not HTTP requests.
    assert rec.metadata["attempts"] == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_500_that_never_recovers_is_one_failed_call(mode: str, oai: FakeOpenAI) -> None:
    """Always 500, num_retries=2: 5 requests, LiteLLM's InternalServerError, 1 failed call."""
    oai.fail_next(50, status=500, headers={"retry-after-ms": "1"})
    meter = tm.Meter(keep_records=True)
    with meter.track("r"), pytest.raises(litellm.exceptions.InternalServerError):
        _complete(mode, **_openai(oai, num_retries=2))
    assert len(oai.requests) == 5  # SDK: 1 + 2 retries; LiteLLM's runner: 2 more
    u = meter.report().node("r").self_usage
    assert _tokens(u) == (1, 0, 0, 0, 0, 0)
    assert (u.cost_usd, _flags(u)) == (0.0, (1, 0, 0))
    [rec] = meter.records()
    assert (rec.failed, rec.model, rec.provider) == (True, "gpt-4o-mini", "openai")
    assert rec.metadata["error"] == "InternalServerError"


def test_completion_with_retries_called_directly_is_recorded(oai: FakeOpenAI) -> None:
    """litellm.completion_with_retries(...) called by the user: 1 exact call (1 x 429 retried)."""
    oai.fail_next(1, status=429)
    with tm.track("r"):
        litellm.completion_with_retries(**_openai(oai, num_retries=2, max_retries=0))
    u = tm.report().node("r").self_usage
    assert _tokens(u) == OPENAI_TOKENS
    assert len(oai.requests) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_router_retries_then_fallback_is_one_call_on_the_ok_deployment(
    mode: str, oai: FakeOpenAI, no_router_backoff: list[float]
) -> None:
    """Router: 'bad' 429 x 3 (2 retries), fallback 'good': 1 call on gpt-4o-mini, $0.00024."""
    with FakeOpenAI() as bad:
        bad.fail_next(100, status=429)
        router = litellm.Router(
            model_list=[
                {
                    "model_name": "bad",
                    "litellm_params": {
                        "model": "openai/gpt-4o",
                        "api_base": bad.base_url + "/v1",
                        "api_key": "sk-fake",
                    },
                },
                {
                    "model_name": "good",
                    "litellm_params": {
                        "model": "openai/gpt-4o-mini",
                        "api_base": oai.base_url + "/v1",
                        "api_key": "sk-fake",
                    },
                },
            ],
            num_retries=2,
            fallbacks=[{"bad": ["good"]}],
            retry_after=0,
        )
        meter = tm.Meter(keep_records=True)
        with meter.track("router"):
            response = _run(
                mode,
                lambda: router.completion(model="bad", messages=MSGS),
                lambda: router.acompletion(model="bad", messages=MSGS),
            )
        assert len(bad.requests) == 3
    assert response.choices[0].message.content == CONTENT
    assert len(oai.requests) == 1
    rep = meter.report()
    u = rep.node("router").self_usage
    assert _tokens(u) == OPENAI_TOKENS
    assert u.cost_usd == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert _flags(u) == (0, 0, 0)
    assert rep.by_model() == {"gpt-4o-mini": u}
    [rec] = meter.records()
    assert rec.metadata["attempts"] > 1


@pytest.mark.parametrize("mode", ["sync", "sync_in_running_loop", "async"])
def test_sdk_fallbacks_are_one_call_on_the_model_that_answered(
    mode: str, anth: FakeAnthropic
) -> None:
    """completion(fallbacks=[anthropic]) after a 500: 1 call on claude-sonnet-4-5, $0.007275."""
    with FakeOpenAI() as bad:
        bad.fail_next(10, status=500)
        kwargs = {
            "model": "openai/gpt-4o",
            "api_base": bad.base_url + "/v1",
            "api_key": "sk-fake",
            "messages": MSGS,
            "max_retries": 0,
            "fallbacks": [
                {
                    "model": "anthropic/claude-sonnet-4-5",
                    "api_base": anth.base_url,
                    "api_key": "sk-fake",
                }
            ],
        }

        async def sync_in_loop() -> Any:
            # A sync call from async code: LiteLLM runs the fallbacks in a fresh thread.
            return litellm.completion(**kwargs)

        meter = tm.Meter(keep_records=True)
        with meter.track("fb"):
            if mode == "sync_in_running_loop":
                asyncio.run(sync_in_loop())
            else:
                _complete(mode, **kwargs)
        assert len(bad.requests) == 1
    assert len(anth.requests) == 1
    rep = meter.report()
    u = rep.node("fb").self_usage
    assert _tokens(u) == ANTHROPIC_TOKENS
    assert u.cost_usd == pytest.approx(CLAUDE_COST, rel=1e-12)
    assert _flags(u) == (0, 0, 0)
    assert rep.by_provider() == {"anthropic": u}
    assert tm.report().total.calls == 0  # nothing leaked to the default meter


# -- 5. Cache hits ----------------------------------------------------------------------


@contextlib.contextmanager
def _local_cache() -> Iterator[litellm.Cache]:
    litellm.cache = litellm.Cache(type="local")
    try:
        yield litellm.cache
    finally:
        litellm.cache = None


async def _until_cached(cache: litellm.Cache, entries: int) -> None:
    """LiteLLM writes the async cache in a background task: wait for it (at most 2 s)."""
    for _ in range(400):
        if len(cache.cache.cache_dict) >= entries:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("LiteLLM never wrote the cache entry")


def test_sync_cache_hit_is_one_free_call(oai: FakeOpenAI) -> None:
    """Same completion twice, local cache: 1 request; the hit is 1 call, 0 tokens, $0, cache_hit."""
    meter = tm.Meter(keep_records=True)
    with _local_cache(), meter.track("c"):
        first = litellm.completion(**_openai(oai))
        second = litellm.completion(**_openai(oai))
    assert second._hidden_params["cache_hit"] is True
    assert second.choices[0].message.content == first.choices[0].message.content
    assert len(oai.requests) == 1
    u = meter.report().node("c").self_usage
    assert _tokens(u) == (2, 1000, 400, 0, 200, 50)
    assert u.cost_usd == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert _flags(u) == (0, 0, 0)
    miss, hit = meter.records()
    assert "cache_hit" not in miss.metadata
    assert dict(hit.metadata) == {"cache_hit": True}
    assert (hit.total_tokens, hit.cost_usd, hit.model, hit.provider) == (
        0,
        0.0,
        "gpt-4o-mini",
        "openai",
    )


async def test_async_cache_hits_are_free_calls(oai: FakeOpenAI) -> None:
    """acompletion, aembedding twice each: 2 requests; each hit 1 call, 0 tokens, $0, cache_hit."""
    embed = {
        "model": "openai/text-embedding-3-small",
        "input": ["a", "b"],
        "api_base": oai.base_url + "/v1",
        "api_key": "sk-fake",
    }
    meter = tm.Meter(keep_records=True)
    with _local_cache() as cache, meter.track("c"):
        await litellm.acompletion(**_openai(oai))
        await _until_cached(cache, 1)
        chat_hit = await litellm.acompletion(**_openai(oai))
        await litellm.aembedding(**embed)
        await _until_cached(cache, 2)
        embed_hit = await litellm.aembedding(**embed)
    assert chat_hit._hidden_params["cache_hit"] is True
    assert embed_hit._hidden_params["cache_hit"] is True
    assert [r.path for r in oai.requests] == ["/v1/chat/completions", "/v1/embeddings"]
    u = meter.report().node("c").self_usage
    # 1000 prompt tokens on the embedding miss; 1000 x $2e-8.
    assert _tokens(u) == (4, 2000, 400, 0, 200, 50)
    assert u.cost_usd == pytest.approx(GPT_4O_MINI_COST + 2e-5, rel=1e-12)
    assert _flags(u) == (0, 0, 0)
    kinds = [(r.kind, dict(r.metadata), r.total_tokens, r.cost_usd) for r in meter.records()]
    assert kinds == [
        ("completion", {}, 1200, pytest.approx(GPT_4O_MINI_COST, rel=1e-12)),
        ("completion", {"cache_hit": True}, 0, 0.0),
        ("embedding", {}, 1000, pytest.approx(2e-5, rel=1e-12)),
        ("embedding", {"cache_hit": True}, 0, 0.0),
    ]


# -- 6. Per-kind record contents --------------------------------------------------------


def _audio() -> io.BytesIO:
    audio = io.BytesIO(b"RIFF\x24\x00\x00\x00WAVEfmt fake audio")
    audio.name = "clip.wav"
    return audio


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_transcription_record(mode: str, oai: FakeOpenAI) -> None:
    """whisper-1, a 12.5 s clip: 1 call, no tokens, $0.00125 (12.5 s x $0.0001 per second)."""
    kwargs = {"model": "whisper-1", "api_base": oai.base_url + "/v1", "api_key": "sk-fake"}
    meter = tm.Meter(keep_records=True)
    with meter.track("t"):
        result = _run(
            mode,
            lambda: litellm.transcription(file=_audio(), **kwargs),
            lambda: litellm.atranscription(file=_audio(), **kwargs),
        )
    assert result.text == CONTENT
    [request] = oai.requests
    assert request.path == "/v1/audio/transcriptions"
    assert request.json["model"] == "whisper-1"
    assert request.json["response_format"] == "verbose_json"
    assert request.json["file"]["filename"] == "clip.wav"
    [rec] = meter.records()
    assert (rec.kind, rec.model, rec.provider, rec.total_tokens) == (
        "transcription",
        "whisper-1",
        "openai",
        0,
    )
    assert rec.cost_usd == pytest.approx(WHISPER_COST, rel=1e-12)
    assert (rec.failed, rec.estimated) == (False, False)
    assert rec.metadata["audio_seconds"] == 12.5
    assert meter.report().node("t").self_usage.calls == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_rerank_record(mode: str, cohere: FakeCohere) -> None:
    """Cohere rerank (1 billed search unit): 1 call, no tokens, $0.002 per query."""
    kwargs = {
        "model": "cohere/rerank-english-v3.0",
        "query": "which?",
        "documents": ["a", "b"],
        "api_base": cohere.base_url,
        "api_key": "fake",
    }
    meter = tm.Meter(keep_records=True)
    with meter.track("r"):
        result = _run(mode, lambda: litellm.rerank(**kwargs), lambda: litellm.arerank(**kwargs))
    assert [r["index"] for r in result.results] == [0, 1]
    [request] = cohere.requests
    assert request.path == "/v2/rerank"
    assert request.json["model"] == "rerank-english-v3.0"
    [rec] = meter.records()
    assert (rec.kind, rec.model, rec.provider, rec.total_tokens) == (
        "rerank",
        "rerank-english-v3.0",
        "cohere",
        0,
    )
    assert rec.cost_usd == pytest.approx(RERANK_COST, rel=1e-12)
    assert meter.report().node("r").self_usage.calls == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_text_completion_embedding_responses_records(mode: str, oai: FakeOpenAI) -> None:
    """text_completion $0.0019, embedding 1000 in $2e-5, responses 1000/400/200/50 $0.00024."""
    base = {"api_base": oai.base_url + "/v1", "api_key": "sk-fake"}
    text = {"model": "openai/gpt-3.5-turbo-instruct", "prompt": "hi", **base}
    embed = {"model": "openai/text-embedding-3-small", "input": ["a", "b"], **base}
    resp = {"model": "openai/gpt-4o-mini", "input": "hi", **base}

    def sync() -> None:
        litellm.text_completion(**text)
        litellm.embedding(**embed)
        litellm.responses(**resp)

    async def concurrent() -> None:
        await litellm.atext_completion(**text)
        await litellm.aembedding(**embed)
        await litellm.aresponses(**resp)

    meter = tm.Meter(keep_records=True)
    with meter.track("k"):
        _run(mode, sync, concurrent)
    assert [r.path for r in oai.requests] == ["/v1/completions", "/v1/embeddings", "/v1/responses"]
    recs = {r.kind: r for r in meter.records()}
    fields = {
        kind: (r.model, r.provider, r.input_tokens, r.cache_read_tokens, r.output_tokens)
        for kind, r in recs.items()
    }
    assert fields == {
        "text_completion": ("gpt-3.5-turbo-instruct", "openai", 1000, 400, 200),
        "embedding": ("text-embedding-3-small", "openai", 1000, 0, 0),
        "responses": ("gpt-4o-mini", "openai", 1000, 400, 200),
    }
    assert recs["responses"].reasoning_tokens == 50
    # gpt-3.5-turbo-instruct: 1000 x 1.5e-6 + 200 x 2e-6 (no cached-input price).
    with _uninstrumented():
        plain = litellm.text_completion(**text)._hidden_params["response_cost"]
    if plain == pytest.approx(0.0013, rel=1e-12):
        # Older LiteLLM (1.90.7, for one) prices the 400 cached tokens at 0 for a model with
        # no cached-input price, without tokenmeter too: 600 x 1.5e-6 + 200 x 2e-6.
        assert recs["text_completion"].cost_usd == pytest.approx(0.0013, rel=1e-12)
    else:
        assert recs["text_completion"].cost_usd == pytest.approx(0.0019, rel=1e-12)
    assert recs["embedding"].cost_usd == pytest.approx(2e-5, rel=1e-12)
    assert recs["responses"].cost_usd == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert meter.report().node("k").self_usage.calls == 3


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_image_generation_records(mode: str, oai: FakeOpenAI) -> None:
    """gpt-image-1, 1000 in / 200 out tokens: $0.013; dall-e-3 (not in the map): unpriced."""
    base = {"prompt": "a cat", "api_base": oai.base_url + "/v1", "api_key": "sk-fake"}

    def sync() -> None:
        litellm.image_generation(model="openai/gpt-image-1", **base)
        litellm.image_generation(model="openai/dall-e-3", **base)

    async def concurrent() -> None:
        await litellm.aimage_generation(model="openai/gpt-image-1", **base)
        await litellm.aimage_generation(model="openai/dall-e-3", **base)

    meter = tm.Meter(keep_records=True)
    with meter.track("img"):
        _run(mode, sync, concurrent)
    priced, unpriced = meter.records()
    assert (priced.model, priced.input_tokens, priced.output_tokens) == ("gpt-image-1", 1000, 200)
    # 1000 x 5e-6 text input + 200 x 4e-5 image output; LiteLLM 1.80 prices the image per
    # pixel instead, $0.041999999696896 (its response_cost without tokenmeter): that price.
    image_cost = pixel_price("gpt-image-1", "medium") or 0.013
    assert priced.cost_usd == pytest.approx(image_cost, rel=1e-9)
    price = pixel_price("dall-e-3")
    if price is not None:
        # Older LiteLLM (1.80 to 1.105) prices dall-e-3 per pixel by its map
        # (its response_cost without tokenmeter): that price.
        assert unpriced.model == "dall-e-3"
        assert unpriced.cost_usd == pytest.approx(price, rel=1e-9)
        u = meter.report().node("img").self_usage
        assert (u.calls, u.unpriced_calls) == (2, 0)
        assert u.cost_usd == pytest.approx(image_cost + price, rel=1e-9)
        return
    assert (unpriced.model, unpriced.cost_usd) == ("dall-e-3", None)
    u = meter.report().node("img").self_usage
    assert (u.calls, u.unpriced_calls, u.cost_usd) == (2, 1, pytest.approx(image_cost, rel=1e-9))


def test_image_usage_given_only_as_input_output_extras_is_read() -> None:
    """A Usage with 0 prompt/completion and 10 in / 5 out as extras (LiteLLM 1.80): 10 / 5."""
    from litellm.types.utils import Usage

    from tokenmeter._litellm import extract

    usage = Usage(prompt_tokens=0, completion_tokens=0, total_tokens=15)
    usage.input_tokens, usage.output_tokens = 10, 5
    assert extract.tokens(usage) == (10, 5, 0, 0, 0)
    assert extract.tokens(Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0)) == (0,) * 5


# -- 7. The matrix: every kind x sync/async x where it is called ------------------------

KINDS = [
    "completion",
    "text_completion",
    "embedding",
    "image_generation",
    "transcription",
    "rerank",
    "responses",
    "router_completion",
]
PLACES = ["own_scope", "nested_scope", "thread_pool", "gathered_tasks"]


class Calls:
    """One call of each kind, sync and async: mock_response where LiteLLM honours it."""

    def __init__(self, oai: FakeOpenAI, cohere: FakeCohere) -> None:
        self.openai_base = oai.base_url + "/v1"
        self.cohere_base = cohere.base_url
        self.router = litellm.Router(
            model_list=[
                {
                    "model_name": "m",
                    "litellm_params": {"model": "gpt-4o-mini", "mock_response": "hi"},
                }
            ]
        )

    def args(self, kind: str) -> tuple[str, dict[str, Any]]:
        """(litellm function name, kwargs) for a kind."""
        if kind == "completion":
            return "completion", {"model": "gpt-4o-mini", "messages": MSGS, "mock_response": "x"}
        if kind == "text_completion":
            return "text_completion", {
                "model": "gpt-3.5-turbo-instruct",
                "prompt": "hi",
                "mock_response": "x",
            }
        if kind == "embedding":
            return "embedding", {
                "model": "text-embedding-3-small",
                "input": ["hi"],
                "mock_response": [0.1, 0.2],
            }
        if kind == "image_generation":
            return "image_generation", {
                "model": "openai/dall-e-3",
                "prompt": "a cat",
                "mock_response": "x",
            }
        if kind == "transcription":
            return "transcription", {
                "model": "whisper-1",
                "file": _audio(),
                "api_base": self.openai_base,
                "api_key": "sk-fake",
            }
        if kind == "rerank":
            return "rerank", {
                "model": "cohere/rerank-english-v3.0",
                "query": "q",
                "documents": ["a", "b"],
                "api_base": self.cohere_base,
                "api_key": "fake",
            }
        assert kind == "responses"
        return "responses", {"model": "gpt-4o-mini", "input": "hi", "mock_response": "x"}

    def sync(self, kind: str) -> Any:
        """Make one sync call of ``kind``."""
        if kind == "router_completion":
            return self.router.completion(model="m", messages=MSGS)
        name, kwargs = self.args(kind)
        return getattr(litellm, name)(**kwargs)

    async def concurrent(self, kind: str) -> Any:
        """Make one async call of ``kind``."""
        if kind == "router_completion":
            return await self.router.acompletion(model="m", messages=MSGS)
        name, kwargs = self.args(kind)
        return await getattr(litellm, "a" + name)(**kwargs)


@pytest.fixture(scope="module")
def calls(_openai_server: FakeOpenAI, _cohere_server: FakeCohere) -> Calls:
    """The module's call makers (one Router for the whole matrix)."""
    return Calls(_openai_server, _cohere_server)


def _place(place: str, call: Callable[[], Any]) -> tuple[str, ...]:
    """Make ``call`` (a sync callable) from ``place``; the path of the scope it should land on."""
    if place == "own_scope":
        with tm.track("case"):
            call()
        return ("case",)
    if place == "nested_scope":
        with tm.track("outer"), tm.track("inner"):
            call()
        return ("outer", "inner")
    if place == "thread_pool":
        with tm.track("pool"), ThreadPoolExecutor(max_workers=2) as pool:
            pool.submit(call).result()
        return ("pool",)
    raise AssertionError(place)


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("kind", KINDS)
def test_matrix_sync(kind: str, place: str, calls: Calls) -> None:
    """A sync call of every kind lands exactly once, on the scope where it was made."""
    if place == "gathered_tasks":

        async def task(name: str, make_call: bool) -> None:
            with tm.track(name):
                await asyncio.sleep(0)
                if make_call:
                    calls.sync(kind)

        async def main() -> None:
            with tm.track("case"):
                await asyncio.gather(task("a", True), task("b", False))

        asyncio.run(main())
        path: tuple[str, ...] = ("case", "a")
    else:
        path = _place(place, lambda: calls.sync(kind))
    _assert_once(path, place)


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("kind", KINDS)
async def test_matrix_async(kind: str, place: str, calls: Calls) -> None:
    """An async call of every kind lands exactly once, on the scope where it was made."""
    if place == "own_scope":
        with tm.track("case"):
            await calls.concurrent(kind)
        path: tuple[str, ...] = ("case",)
    elif place == "nested_scope":
        with tm.track("outer"), tm.track("inner"):
            await calls.concurrent(kind)
        path = ("outer", "inner")
    elif place == "thread_pool":
        loop = asyncio.get_running_loop()
        with tm.track("pool"), ThreadPoolExecutor(max_workers=2) as pool:
            await loop.run_in_executor(pool, lambda: asyncio.run(calls.concurrent(kind)))
        path = ("pool",)
    else:

        async def task(name: str, make_call: bool) -> None:
            with tm.track(name):
                await asyncio.sleep(0)
                if make_call:
                    await calls.concurrent(kind)

        with tm.track("case"):
            await asyncio.gather(task("a", True), task("b", False))
        path = ("case", "a")
    _assert_once(path, place)


def _assert_once(path: tuple[str, ...], place: str) -> None:
    rep = tm.report()
    assert rep.node(*path).self_usage.calls == 1
    assert rep.node(*path).usage.calls == 1
    assert rep.total.calls == 1
    assert rep.total.failed_calls == 0
    if place == "nested_scope":
        assert rep.node("outer").self_usage.calls == 0
    if place == "gathered_tasks":
        assert rep.node("case").self_usage.calls == 0
        assert rep.node("case", "b").usage.calls == 0
