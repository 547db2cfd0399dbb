"""A cost that is no number of dollars is never taken as one: not $0, not lost."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import litellm
import pytest

import tokenmeter as tm
from tokenmeter._litellm.extract import cost_units
from tokenmeter._pricing import price_tokens
from tokenmeter._usage import cost_to_units

MSGS = [{"role": "user", "content": "hi"}]
# LiteLLM's counts for MSGS answered "ok" by mock_response: 10 in, 20 out.
TOKENS = (10, 20)


@pytest.fixture
def bad_rates() -> Iterator[dict[str, str]]:
    """Two models in LiteLLM's price map whose input rate is inf and NaN."""
    names = {"inf": "openai/tm-test-inf-rate", "nan": "openai/tm-test-nan-rate"}
    for kind, name in names.items():
        litellm.register_model(
            {
                name: {
                    "input_cost_per_token": float(kind),
                    "output_cost_per_token": 1e-6,
                    "litellm_provider": "openai",
                    "mode": "chat",
                }
            }
        )
    yield names
    for name in names.values():
        litellm.model_cost.pop(name, None)
        litellm.model_cost.pop(name.split("/", 1)[1], None)


def _calls(model: str, n: int, mode: str) -> None:
    kw: dict[str, Any] = {"model": model, "messages": MSGS, "mock_response": "ok"}
    if mode == "sync":
        for _ in range(n):
            litellm.completion(**kw)
    elif mode == "async":

        async def run() -> None:
            for _ in range(n):
                await litellm.acompletion(**kw)

        asyncio.run(run())
    else:
        for _ in range(n):
            for _chunk in litellm.completion(stream=True, **kw):
                pass


@pytest.mark.parametrize("mode", ["sync", "async", "stream"])
@pytest.mark.parametrize("n", [1, 6])  # 1: counted alone; 6: a run summed by columns
@pytest.mark.parametrize("kind", ["inf", "nan"])
def test_a_price_map_rate_that_is_no_number_makes_the_call_unpriced(
    bad_rates: dict[str, str], kind: str, n: int, mode: str
) -> None:
    """Rates of inf or NaN in LiteLLM's map: every call counted with its tokens, unpriced."""
    meter = tm.Meter()
    with meter.track("agent"):
        _calls(bad_rates[kind], n, mode)
    u = meter.report().root.children["agent"].usage
    tokens = (8, 1) if mode == "stream" else TOKENS  # a mock stream: LiteLLM's estimate
    assert (u.calls, u.input_tokens, u.output_tokens) == (n, n * tokens[0], n * tokens[1])
    assert (u.unpriced_calls, u.priced_calls, u.cost_usd) == (n, 0, 0.0)


@pytest.mark.parametrize("reported", [float("inf"), float("nan"), 1e300, -0.5, "0.1"])
def test_a_reported_cost_that_is_no_figure_is_priced_from_the_tokens(reported: object) -> None:
    """A response_cost that is not a finite, non-negative number up to $1e12 is not taken."""
    toks = (1000, 200, 0, 0, 0)
    expected = price_tokens("gpt-4o-mini", "openai", *toks)
    assert expected == pytest.approx(0.00027, rel=1e-12)
    assert cost_units("gpt-4o-mini", "openai", reported, toks) == cost_to_units(expected)


def test_a_reported_cost_of_zero_for_a_free_model_stays_free() -> None:
    """A reported 0 for a model LiteLLM prices (its rates finite) is $0, priced."""
    assert cost_units("gpt-4o-mini", "openai", 0.0, (1000, 200, 0, 0, 0)) == 0
