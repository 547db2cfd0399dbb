"""Which provider a LiteLLM call is recorded under: the one LiteLLM resolved for the call."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import litellm
import pytest

import tokenmeter as tm

MSGS = [{"role": "user", "content": "hi"}]
CLAUDE = litellm.model_cost["claude-sonnet-4-5"]
# A mock stream answering "hi" without usage: LiteLLM's estimate, 8 prompt tokens, 1 out.
STREAM_COST = 8 * CLAUDE["input_cost_per_token"] + 1 * CLAUDE["output_cost_per_token"]


def _read(mode: str, **kwargs: Any) -> None:
    """Make a mock streaming call and read it to the end."""
    if mode == "sync":
        for _ in litellm.completion(stream=True, **kwargs):
            pass
        return

    async def main() -> None:
        stream = await litellm.acompletion(stream=True, **kwargs)
        async for _ in stream:
            pass

    asyncio.run(main())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"])
def test_a_mock_stream_of_an_anthropic_model_is_recorded_under_anthropic(
    model: str, mode: str
) -> None:
    """A mock Claude stream read to the end: anthropic/claude-sonnet-4-5, 8 in, 1 out, priced."""
    meter = tm.Meter(keep_records=True)
    with meter.track("x"):
        _read(mode, model=model, messages=MSGS, mock_response="hi")
    [rec] = meter.records()
    assert (rec.provider, rec.model) == ("anthropic", "claude-sonnet-4-5")
    assert (rec.input_tokens, rec.output_tokens, rec.estimated) == (8, 1, True)
    assert rec.cost_usd == pytest.approx(STREAM_COST, rel=1e-12)
    rep = meter.report()
    assert list(rep.by_provider()) == ["anthropic"]
    assert rep.by_provider()["anthropic"] == rep.total
    assert list(rep.by_model()) == ["claude-sonnet-4-5"]


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"])
def test_a_mock_stream_names_the_provider_its_unstreamed_call_names(model: str) -> None:
    """The same mock call streamed and unstreamed: one provider and model in the report."""
    meter = tm.Meter()
    with meter.track("x"):
        litellm.completion(model=model, messages=MSGS, mock_response="hi")
        _read("sync", model=model, messages=MSGS, mock_response="hi")
    rep = meter.report()
    assert list(rep.by_provider()) == ["anthropic"]
    assert rep.by_provider()["anthropic"].calls == 2
    assert list(rep.by_model()) == ["claude-sonnet-4-5"]


def test_a_dropped_mock_stream_is_recorded_under_its_provider() -> None:
    """A mock Claude stream dropped after its first chunk: one call under anthropic."""
    meter = tm.Meter(keep_records=True)
    with meter.track("x"):
        stream = litellm.completion(
            model="claude-sonnet-4-5", messages=MSGS, mock_response="one two three", stream=True
        )
        next(stream)
        del stream
    for _ in range(300):
        gc.collect()
        if meter.records():
            break
        time.sleep(0.01)
    [rec] = meter.records()
    assert (rec.provider, rec.model) == ("anthropic", "claude-sonnet-4-5")
    assert dict(rec.metadata) == {"stream": True, "abandoned": True}


def test_a_mock_stream_of_an_openai_model_stays_under_openai() -> None:
    """A mock gpt-4o-mini stream: openai/gpt-4o-mini, as before."""
    meter = tm.Meter(keep_records=True)
    with meter.track("x"):
        _read("sync", model="gpt-4o-mini", messages=MSGS, mock_response="hi")
    [rec] = meter.records()
    assert (rec.provider, rec.model) == ("openai", "gpt-4o-mini")
