"""A Router with deployment prices leaves the price map's prices of other calls alone.

LiteLLM 1.90 and later file a price-less entry (``{}`` or ``{"id": ...}``) under
``openai/<model>`` when a Router deployment of a model listed under another provider
(gpt-3.5-turbo-instruct is ``text-completion-openai``'s) sets its own prices; LiteLLM
then prices that model at $0 under ``openai``. Calls tokenmeter prices itself keep the
map's real price; a model with no price but that entry stays unpriced.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from support.responses import usage_counts

import tokenmeter as tm
from tests.fakeproviders import FakeOpenAI

MODEL = "gpt-3.5-turbo-instruct"  # $1.5e-6 in, $2e-6 out in the map
TEXT_MODEL = "openai/" + MODEL
MAP_IN, MAP_OUT = 1.5e-6, 2e-6


@pytest.fixture
def price_map() -> Iterator[None]:
    """LiteLLM's price map as it was, after the test."""
    saved = {k: dict(v) if isinstance(v, dict) else v for k, v in litellm.model_cost.items()}
    yield
    litellm.model_cost.clear()
    litellm.model_cost.update(saved)


def _priced_router(srv: FakeOpenAI, model: str) -> litellm.Router:
    params = {
        "model": model,
        "api_base": srv.base_url + "/v1",
        "api_key": "sk-fake",
        "input_cost_per_token": 1e-3,
        "output_cost_per_token": 2e-3,
    }
    return litellm.Router(model_list=[{"model_name": "m", "litellm_params": params}])


@pytest.mark.parametrize("stream", [False, True])
def test_a_text_completion_estimate_after_a_priced_router_is_priced_from_the_map(
    stream: bool, bare: FakeOpenAI, price_map: None
) -> None:
    """gpt-3.5-turbo-instruct without usage, after a priced Router: 1 in / 4 out, map price."""
    _priced_router(bare, TEXT_MODEL)
    kwargs: dict[str, Any] = {"api_base": bare.base_url + "/v1", "api_key": "sk-fake"}
    with tm.track("t"):
        reply = litellm.text_completion(model=TEXT_MODEL, prompt="hi", stream=stream, **kwargs)
        if stream:
            list(reply)
    u = tm.report().node("t").usage
    assert usage_counts(u) == (1, 1, 4, 1, 0, 0)
    assert (u.priced_calls, u.unpriced_calls) == (1, 0)
    assert u.cost_usd == pytest.approx(1 * MAP_IN + 4 * MAP_OUT, rel=1e-12)


@pytest.mark.parametrize("provider", ["openai", None])
def test_a_manual_record_after_a_priced_router_is_priced_from_the_map(
    provider: str | None, bare: FakeOpenAI, price_map: None
) -> None:
    """record() of gpt-3.5-turbo-instruct after a priced Router: 1000 in / 100 out, map price."""
    _priced_router(bare, TEXT_MODEL)
    with tm.track("t"):
        tm.record(model=MODEL, provider=provider, input_tokens=1000, output_tokens=100)
    u = tm.report().node("t").usage
    assert (u.priced_calls, u.unpriced_calls) == (1, 0)
    assert u.cost_usd == pytest.approx(1000 * MAP_IN + 100 * MAP_OUT, rel=1e-12)


def test_a_model_priced_only_by_a_router_deployment_is_unpriced_elsewhere(
    bare: FakeOpenAI, price_map: None
) -> None:
    """openai/acme-ft-1, priced by a Router deployment only: a record of it is unpriced."""
    _priced_router(bare, "openai/acme-ft-1")
    with tm.track("t"):
        tm.record(model="openai/acme-ft-1", input_tokens=1000, output_tokens=100)
    u = tm.report().node("t").usage
    assert (u.calls, u.priced_calls, u.unpriced_calls, u.cost_usd) == (1, 0, 1, 0.0)


def test_a_model_free_in_the_map_is_recorded_free() -> None:
    """codestral/codestral-2405, $0 in LiteLLM's map: a record of it is priced, at $0."""
    with tm.track("t"):
        tm.record(model="codestral/codestral-2405", input_tokens=1000, output_tokens=100)
    u = tm.report().node("t").usage
    assert (u.calls, u.priced_calls, u.unpriced_calls, u.cost_usd) == (1, 1, 0, 0.0)


def test_a_text_completion_with_usage_after_a_priced_router_is_priced_from_the_map(
    bare: FakeOpenAI, price_map: None
) -> None:
    """gpt-3.5-turbo-instruct, usage served (100 in / 7 out), after a priced Router: map price."""
    _priced_router(bare, TEXT_MODEL)
    served = FakeOpenAI(usage={"prompt": 100, "completion": 7}, content="x")
    with served, tm.track("t"):
        litellm.text_completion(
            model=TEXT_MODEL, prompt="hi", api_base=served.base_url + "/v1", api_key="k"
        )
    u = tm.report().node("t").usage
    assert usage_counts(u) == (1, 100, 7, 0, 0, 0)
    assert (u.priced_calls, u.unpriced_calls) == (1, 0)
    assert u.cost_usd == pytest.approx(100 * MAP_IN + 7 * MAP_OUT, rel=1e-12)
