"""LiteLLM calls made hostile: strict servers, calls made in callbacks, mutated results."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import litellm
import pytest

import tokenmeter as tm
from tests.fakeproviders import FakeOpenAI, StrictOpenAI, block_external_network
from tokenmeter._litellm import wrappers

MSGS = [{"role": "user", "content": "hi"}]
CONTENT = "one two three four"
# LiteLLM's estimate for a stream of CONTENT without a usage chunk: 8 in / 4 out (gpt-4o-mini).
ESTIMATE_COST = 8 * 1.5e-7 + 4 * 6e-7
USAGE = {"prompt": 1000, "completion": 200}
# gpt-4o-mini: 1000 * 1.5e-7 + 200 * 6e-7
SERVED_COST = 0.00027


def _counts(u: tm.Usage) -> tuple[int, int, int, int, int]:
    """(calls, input, output, failed, estimated)."""
    return (u.calls, u.input_tokens, u.output_tokens, u.failed_calls, u.estimated_calls)


@pytest.fixture(autouse=True)
def _offline() -> Iterator[None]:
    with block_external_network() as attempted:
        yield
    assert attempted == []


@pytest.fixture(autouse=True)
def _forget_refusals() -> Iterator[None]:
    wrappers._stream_options_refused.clear()
    yield
    wrappers._stream_options_refused.clear()


@pytest.fixture
def strict() -> Iterator[StrictOpenAI]:
    with StrictOpenAI(usage=USAGE, content=CONTENT) as srv:
        yield srv


def _kw(srv: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "api_base": srv.base_url + "/v1",
        "api_key": "sk-fake",
        "messages": MSGS,
        **extra,
    }


def _text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _stream(mode: str, **kwargs: Any) -> list[Any]:
    if mode == "sync":
        return list(litellm.completion(stream=True, **kwargs))

    async def run() -> list[Any]:
        return [c async for c in await litellm.acompletion(stream=True, **kwargs)]

    return asyncio.run(run())


# -- item: strict servers reject the injected stream_options ----------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_strict_server_stream_returns_as_without_tokenmeter(
    mode: str, strict: StrictOpenAI
) -> None:
    """A strict server's 400 on our stream_options: retried once without it, one estimated call."""
    with tm.track("s") as scope:
        chunks = _stream(mode, **_kw(strict))
    assert _text(chunks) == CONTENT
    first, second = strict.requests
    assert first.json["stream_options"] == {"include_usage": True}
    assert "stream_options" not in second.json
    assert _counts(scope.usage) == (1, 8, 4, 0, 1)
    assert scope.usage.cost_usd == pytest.approx(ESTIMATE_COST, rel=1e-12)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_strict_server_is_remembered_per_api_base(mode: str, strict: StrictOpenAI) -> None:
    """After one refusal, that api_base gets no stream_options; another api_base still does."""
    with FakeOpenAI(usage=USAGE, content=CONTENT) as lenient, tm.track("s") as scope:
        _stream(mode, **_kw(strict))
        strict.clear()
        _stream(mode, **_kw(strict))
        _stream(mode, **_kw(lenient))
        assert [sorted(r.json) for r in strict.requests] == [["messages", "model", "stream"]]
        assert lenient.requests[0].json["stream_options"] == {"include_usage": True}
    # Two estimated streams from the strict server, one exact from the lenient one.
    assert _counts(scope.usage) == (3, 8 + 8 + 1000, 4 + 4 + 200, 0, 2)
    assert scope.usage.cost_usd == pytest.approx(2 * ESTIMATE_COST + SERVED_COST, rel=1e-12)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_another_400_is_not_retried(mode: str) -> None:
    """A 400 that does not name stream_options raises as it is: one request, one failed call."""
    with FakeOpenAI() as srv, tm.track("s") as scope:
        srv.fail_next(status=400)
        with pytest.raises(litellm.BadRequestError, match="fake error 400"):
            _stream(mode, **_kw(srv))
        assert len(srv.requests) == 1
    assert _counts(scope.usage) == (1, 0, 0, 1, 0)
    assert wrappers._stream_options_refused == {}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_users_own_stream_options_are_never_touched(mode: str, strict: StrictOpenAI) -> None:
    """stream_options the caller passed are sent as given; the server's refusal is the caller's."""
    with tm.track("s") as scope, pytest.raises(litellm.BadRequestError, match="stream_options"):
        _stream(mode, **_kw(strict, stream_options={"include_usage": True}))
    assert len(strict.requests) == 1
    assert _counts(scope.usage) == (1, 0, 0, 1, 0)


def test_failure_of_the_retry_is_one_failed_call(strict: StrictOpenAI) -> None:
    """The retry without stream_options fails too (a 500): the caller gets that error, once."""
    with tm.track("s") as scope:
        refusal = {"error": {"message": "Unrecognized request argument supplied: stream_options"}}
        strict.fail_next(status=400, body=refusal)
        strict.fail_next(status=503)
        with pytest.raises(litellm.ServiceUnavailableError):
            litellm.completion(stream=True, max_retries=0, **_kw(strict))
    assert len(strict.requests) == 2
    assert _counts(scope.usage) == (1, 0, 0, 1, 0)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_router_stream_to_a_strict_deployment(mode: str, strict: StrictOpenAI) -> None:
    """A Router stream whose deployment is strict returns its text, recorded once, estimated."""
    router = litellm.Router(
        model_list=[
            {
                "model_name": "m",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": strict.base_url + "/v1",
                    "api_key": "sk-fake",
                },
            }
        ]
    )
    with tm.track("s") as scope:
        if mode == "sync":
            chunks = list(router.completion(model="m", messages=MSGS, stream=True))
        else:

            async def run() -> list[Any]:
                stream = await router.acompletion(model="m", messages=MSGS, stream=True)
                return [c async for c in stream]

            chunks = asyncio.run(run())
    assert _text(chunks) == CONTENT
    assert ["stream_options" in r.json for r in strict.requests] == [True, False]
    assert _counts(scope.usage) == (1, 8, 4, 0, 1)


def test_plain_calls_to_a_strict_server_are_unchanged(strict: StrictOpenAI) -> None:
    """A non-streamed call gets no stream_options: one request, the served usage."""
    with tm.track("s") as scope:
        litellm.completion(**_kw(strict))
    assert len(strict.requests) == 1
    assert _counts(scope.usage) == (1, 1000, 200, 0, 0)
    assert scope.usage.cost_usd == pytest.approx(SERVED_COST, rel=1e-12)


def test_completion_with_acompletion_true_to_a_strict_server(strict: StrictOpenAI) -> None:
    """completion(..., acompletion=True, stream=True): refused, made again when awaited, once."""

    async def run() -> list[Any]:
        stream = await litellm.completion(stream=True, acompletion=True, **_kw(strict))
        return [c async for c in stream]

    with tm.track("s") as scope:
        chunks = asyncio.run(run())
    assert _text(chunks) == CONTENT
    assert ["stream_options" in r.json for r in strict.requests] == [True, False]
    assert _counts(scope.usage) == (1, 8, 4, 0, 1)
