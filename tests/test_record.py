"""tm.record: manual calls, their validation, pricing and metadata."""

from __future__ import annotations

import subprocess
import sys
import time
import types
from typing import Any

import litellm
import pytest

import tokenmeter as tm
from tokenmeter import _pricing

GOOD: dict[str, Any] = {"model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 5}


def _gpt_4o_mini_cost(fresh: int, cached: int, output: int) -> float:
    entry = litellm.model_cost["gpt-4o-mini"]
    return (
        fresh * entry["input_cost_per_token"]
        + cached * entry["cache_read_input_token_cost"]
        + output * entry["output_cost_per_token"]
    )


def test_record_returns_the_call_record() -> None:
    """tm.record returns a CallRecord with the given numbers, kind 'manual' and a timestamp."""
    before = time.time()
    rec = tm.record(
        model="gpt-4o-mini",
        input_tokens=150,
        output_tokens=75,
        cache_read_tokens=50,
        cache_write_tokens=20,
        reasoning_tokens=30,
        cost_usd=0.001,
    )
    assert isinstance(rec, tm.CallRecord)
    assert (rec.model, rec.provider, rec.kind, rec.path) == ("gpt-4o-mini", "openai", "manual", ())
    assert (rec.input_tokens, rec.output_tokens, rec.total_tokens) == (150, 75, 225)
    assert (rec.cache_read_tokens, rec.cache_write_tokens, rec.reasoning_tokens) == (50, 20, 30)
    assert rec.cost_usd == 0.001
    assert rec.priced is True
    assert before <= rec.timestamp <= time.time()


def test_record_lands_on_the_current_scope() -> None:
    """A record inside track('a')/track('b') counts on a/b: 1 call, 10 in, 5 out, $0.5."""
    with tm.track("a"), tm.track("b"):
        rec = tm.record(**GOOD, cost_usd=0.5)
    assert rec.path == ("a", "b")
    node = tm.report().node("a", "b")
    assert node.self_usage == tm.Usage(calls=1, input_tokens=10, output_tokens=5, cost_usd=0.5)
    assert tm.report().node("a").self_usage == tm.Usage()
    assert tm.report().total == node.usage


def test_record_outside_scopes_lands_on_root() -> None:
    """With no scope open, a record lands on the default meter's root."""
    tm.record(**GOOD, cost_usd=0.0)
    rep = tm.report()
    assert rep.root.self_usage.calls == 1
    assert rep.root.children == {}


def test_flags_are_counted() -> None:
    """failed=True and estimated=True add to failed_calls and estimated_calls."""
    tm.record(**GOOD, cost_usd=0.0, failed=True)
    tm.record(**GOOD, cost_usd=0.0, estimated=True)
    tm.record(**GOOD, cost_usd=0.0)
    total = tm.report().total
    assert (total.calls, total.failed_calls, total.estimated_calls) == (3, 1, 1)


BAD_INPUTS = [
    ({"input_tokens": -1}, "input_tokens"),
    ({"output_tokens": -5}, "output_tokens"),
    ({"input_tokens": 1.0}, "input_tokens"),
    ({"input_tokens": 10.5}, "input_tokens"),
    ({"output_tokens": True}, "output_tokens"),
    ({"input_tokens": "10"}, "input_tokens"),
    ({"input_tokens": None}, "input_tokens"),
    ({"output_tokens": None}, "output_tokens"),
    ({"cache_read_tokens": -1}, "cache_read_tokens"),
    ({"cache_write_tokens": 2.0}, "cache_write_tokens"),
    ({"reasoning_tokens": False}, "reasoning_tokens"),
    ({"cache_read_tokens": 6, "cache_write_tokens": 5}, "cache_read_tokens + cache_write_tokens"),
    ({"cache_read_tokens": 11}, "cache_read_tokens"),
    ({"reasoning_tokens": 6}, "reasoning_tokens"),
    ({"model": ""}, "model"),
    ({"model": "   "}, "model"),
    ({"model": None}, "model"),
    ({"model": 3}, "model"),
    ({"cost_usd": -0.1}, "cost_usd"),
    ({"cost_usd": float("nan")}, "cost_usd"),
    ({"cost_usd": float("inf")}, "cost_usd"),
    ({"cost_usd": "0.1"}, "cost_usd"),
    ({"cost_usd": True}, "cost_usd"),
    ({"metadata": [("a", 1)]}, "metadata"),
    ({"provider": 3}, "provider"),
    ({"provider": ""}, "provider"),
    ({"module": 3}, "module"),
    ({"operation": ["x"]}, "operation"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"timestamp": 10**400}, "timestamp"),
    ({"failed": "no"}, "failed"),
    ({"failed": 0}, "failed"),
    ({"estimated": 2}, "estimated"),
    ({"cost_usd": 1e300}, "cost_usd"),
    ({"cost_usd": 10**400}, "cost_usd"),
    ({"input_tokens": 10**400}, "input_tokens"),
    ({"output_tokens": 2**63}, "output_tokens"),
    # Past Python's 4,300-digit limit on int to str, and negative past 10**30.
    ({"input_tokens": 10**5000}, "input_tokens"),
    ({"output_tokens": -(10**5000)}, "output_tokens"),
    ({"cache_read_tokens": -(10**40)}, "cache_read_tokens"),
    ({"cost_usd": -(10**5000)}, "cost_usd"),
    ({"timestamp": 10**5000}, "timestamp"),
    ({"module": 10**5000}, "module"),
    ({"metadata": {1: "a"}}, "metadata keys"),
    ({"metadata": {"score": float("nan")}}, "metadata\\['score'\\]"),
    ({"provider": "   "}, "provider"),
    ({"module": " "}, "module"),
    ({"operation": "\t"}, "operation"),
]


@pytest.mark.parametrize(("bad", "field"), BAD_INPUTS)
def test_bad_input_raises_and_records_nothing(bad: dict[str, Any], field: str) -> None:
    """Each bad field raises ValueError naming it; the meter and its records stay empty."""
    meter = tm.Meter(keep_records=True)
    with meter.track("s"):
        with pytest.raises(ValueError, match=f"^{field.replace('+', '[+]')}"):
            meter.record(**{**GOOD, "cost_usd": 0.1, **bad})
        with pytest.raises(ValueError, match=f"^{field.replace('+', '[+]')}"):
            tm.record(**{**GOOD, "cost_usd": 0.1, **bad})
    assert meter.report().total == tm.Usage()
    assert meter.records() == []
    assert tm.report().total == tm.Usage()


def test_missing_counts_raise() -> None:
    """Leaving out input_tokens or output_tokens raises ValueError naming it."""
    with pytest.raises(ValueError, match="input_tokens"):
        tm.record(model="m", output_tokens=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="output_tokens"):
        tm.record(model="m", input_tokens=1)  # type: ignore[call-arg]
    assert tm.report().total == tm.Usage()


def test_subsets_equal_to_totals_are_accepted() -> None:
    """cache_read + cache_write == input and reasoning == output are valid (edge, not error)."""
    rec = tm.record(
        model="m",
        input_tokens=10,
        cache_read_tokens=6,
        cache_write_tokens=4,
        output_tokens=5,
        reasoning_tokens=5,
        cost_usd=0,
    )
    assert (rec.cache_read_tokens, rec.cache_write_tokens, rec.reasoning_tokens) == (6, 4, 5)
    assert rec.cost_usd == 0.0


def test_metadata_is_copied_not_aliased() -> None:
    """Changing the metadata dict after record() does not change the record; it is read-only."""
    md: dict[str, Any] = {"attempt": 1}
    meter = tm.Meter(keep_records=True)
    rec = meter.record(**GOOD, cost_usd=0.0, metadata=md)
    md["attempt"] = 2
    md["extra"] = True
    assert rec.metadata == {"attempt": 1}
    assert meter.records()[0].metadata == {"attempt": 1}
    with pytest.raises(TypeError):
        rec.metadata["attempt"] = 3  # type: ignore[index]


def test_cost_none_is_priced_from_litellm() -> None:
    """1000 in (400 cached) + 100 out of gpt-4o-mini cost 600*1.5e-7 + 400*7.5e-8 + 100*6e-7."""
    expected = _gpt_4o_mini_cost(600, 400, 100)
    assert expected == pytest.approx(600 * 1.5e-7 + 400 * 7.5e-8 + 100 * 6e-7, rel=1e-12)
    rec = tm.record(
        model="gpt-4o-mini", input_tokens=1000, cache_read_tokens=400, output_tokens=100
    )
    assert rec.cost_usd == pytest.approx(expected, rel=1e-12)
    total = tm.report().total
    assert total.cost_usd == pytest.approx(expected, rel=1e-9)
    assert (total.calls, total.unpriced_calls, total.priced_calls) == (1, 0, 1)


def test_unknown_model_is_unpriced_not_free() -> None:
    """A model LiteLLM does not know: cost_usd None on the record, unpriced_calls == 1, $0.0."""
    rec = tm.record(model="no-such-model-tokenmeter", input_tokens=10, output_tokens=5)
    assert rec.cost_usd is None
    assert rec.priced is False
    total = tm.report().total
    assert (total.calls, total.unpriced_calls, total.priced_calls, total.cost_usd) == (1, 1, 0, 0.0)
    assert "unpriced" in tm.report().format()


def test_set_price_overrides_litellm() -> None:
    """A custom price of $1/$2 per Mtok prices 1000 in + 100 out at exactly $0.0012."""
    tm.set_price("gpt-4o-mini", input_per_mtok=1.0, output_per_mtok=2.0)
    rec = tm.record(model="gpt-4o-mini", input_tokens=1000, output_tokens=100)
    assert rec.cost_usd == pytest.approx(0.0012, rel=1e-12)
    assert tm.report().total.cost_usd == 0.0012


def test_set_price_cache_rates_and_unknown_model() -> None:
    """Cache reads at their own rate: 600*1 + 400*0.5 + 100*2 per Mtok = $0.001, any model."""
    tm.set_price("my-model", input_per_mtok=1.0, output_per_mtok=2.0, cache_read_per_mtok=0.5)
    rec = tm.record(model="my-model", input_tokens=1000, cache_read_tokens=400, output_tokens=100)
    assert rec.cost_usd == pytest.approx(0.001, rel=1e-12)
    assert tm.report().total.unpriced_calls == 0


def test_set_price_matches_with_or_without_provider_prefix() -> None:
    """set_price('openai/x') prices model 'x' of provider openai, and 'x' prices 'openai/x'."""
    tm.set_price("openai/custom-a", input_per_mtok=1.0, output_per_mtok=1.0)
    tm.set_price("custom-b", input_per_mtok=2.0, output_per_mtok=2.0)
    a = tm.record(model="custom-a", provider="openai", input_tokens=500_000, output_tokens=0)
    b = tm.record(model="openai/custom-b", input_tokens=500_000, output_tokens=0)
    assert (a.cost_usd, b.cost_usd) == (0.5, 1.0)
    tm.clear_prices("custom-b")
    c = tm.record(model="openai/custom-b", input_tokens=1, output_tokens=0)
    assert c.cost_usd is None


def _map_cost(model: str, input_tokens: int, output_tokens: int) -> float:
    entry = litellm.model_cost[model]
    return (
        input_tokens * entry["input_cost_per_token"]
        + output_tokens * entry["output_cost_per_token"]
    )


@pytest.mark.parametrize("provider", ["openai", None])
def test_a_provider_prefix_is_priced_from_the_models_own_entry(provider: str | None) -> None:
    """openai/gpt-3.5-turbo-instruct (filed under text-completion-openai), 10/5: map price."""
    rec = tm.record(
        model="openai/gpt-3.5-turbo-instruct", provider=provider, input_tokens=10, output_tokens=5
    )
    assert (rec.model, rec.provider) == ("openai/gpt-3.5-turbo-instruct", "openai")
    assert rec.cost_usd == pytest.approx(_map_cost("gpt-3.5-turbo-instruct", 10, 5), rel=1e-12)
    bare = tm.record(
        model="gpt-3.5-turbo-instruct", provider="openai", input_tokens=10, output_tokens=5
    )
    assert rec.cost_usd == bare.cost_usd


@pytest.mark.parametrize(
    ("model", "bare"),
    [("openai/gpt-4o-mini", "gpt-4o-mini"), ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5")],
)
def test_a_provider_prefixed_model_of_that_provider_is_priced(model: str, bare: str) -> None:
    """openai/gpt-4o-mini and anthropic/claude-sonnet-4-5, 1000/100: the bare model's price."""
    rec = tm.record(model=model, input_tokens=1000, output_tokens=100)
    assert rec.cost_usd == pytest.approx(_map_cost(bare, 1000, 100), rel=1e-12)
    assert tm.report().total.unpriced_calls == 0


def test_a_prefixed_model_the_map_does_not_know_stays_unpriced() -> None:
    """openai/acme-ft-1 and foo/gpt-3.5-turbo-instruct (no such provider): unpriced, not $0."""
    a = tm.record(model="openai/acme-ft-1", input_tokens=10, output_tokens=5)
    b = tm.record(model="foo/gpt-3.5-turbo-instruct", input_tokens=10, output_tokens=5)
    assert (a.cost_usd, b.cost_usd) == (None, None)
    u = tm.report().total
    assert (u.calls, u.unpriced_calls, u.cost_usd) == (2, 2, 0.0)


def test_set_price_validates() -> None:
    """A negative or non-numeric custom price, or an empty model, raises ValueError."""
    with pytest.raises(ValueError, match="input_per_mtok"):
        tm.set_price("m", input_per_mtok=-1.0, output_per_mtok=1.0)
    with pytest.raises(ValueError, match="output_per_mtok"):
        tm.set_price("m", input_per_mtok=1.0, output_per_mtok="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model"):
        tm.set_price("", input_per_mtok=1.0, output_per_mtok=1.0)
    with pytest.raises(ValueError, match="cache_read_per_mtok"):
        tm.set_price("m", input_per_mtok=1.0, output_per_mtok=1.0, cache_read_per_mtok=float("inf"))
    with pytest.raises(ValueError, match="input_per_mtok"):
        tm.set_price("m", input_per_mtok=float("nan"), output_per_mtok=1.0)


def test_set_price_refuses_a_rate_no_float_can_hold() -> None:
    """A rate of 10**400 (an int past the largest float) raises ValueError naming it."""
    with pytest.raises(ValueError, match="input_per_mtok must be a non-negative finite number"):
        tm.set_price("m", input_per_mtok=10**400, output_per_mtok=1.0)


def test_a_custom_price_past_any_real_cost_leaves_the_call_unpriced() -> None:
    """Rates of 1e300/Mtok: a call costing over $1e12 (or overflowing) is recorded unpriced."""
    tm.set_price("absurd", input_per_mtok=1e300, output_per_mtok=1e300)
    small = tm.record(model="absurd", input_tokens=10, output_tokens=20)
    huge = tm.record(model="absurd", input_tokens=10**12, output_tokens=10**12)
    assert (small.cost_usd, huge.cost_usd) == (None, None)
    u = tm.report().total
    assert (u.calls, u.unpriced_calls, u.cost_usd) == (2, 2, 0.0)

    """provider None: 'anthropic/x' -> 'anthropic', 'gpt-4o-mini' -> 'openai'; explicit wins."""
    assert tm.record(model="anthropic/x", input_tokens=1, output_tokens=1).provider == "anthropic"
    assert tm.record(**GOOD).provider == "openai"
    assert tm.record(**GOOD, provider="azure").provider == "azure"


def test_provider_does_not_depend_on_import_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before litellm is imported, every record of gpt-4o-mini gets provider 'openai'."""
    # Make tokenmeter believe litellm was never imported (as in a fresh process).
    monkeypatch.setattr(_pricing, "sys", types.SimpleNamespace(modules={}))
    _pricing._providers.clear()
    a = tm.record(model="gpt-4o-mini", input_tokens=1, output_tokens=1, cost_usd=0.0)
    b = tm.record(model="gpt-4o-mini", input_tokens=1, output_tokens=1)
    assert (a.provider, b.provider) == ("openai", "openai")
    assert list(tm.report().by_provider()) == ["openai"]


def test_provider_before_litellm_is_imported_in_a_fresh_process() -> None:
    """In a new process, record(cost_usd=...) before any litellm import names 'openai'."""
    code = (
        "import sys, tokenmeter as tm\n"
        "assert 'litellm' not in sys.modules\n"
        "a = tm.record(model='gpt-4o-mini', input_tokens=1, output_tokens=1, cost_usd=0.0)\n"
        "import litellm\n"
        "b = tm.record(model='gpt-4o-mini', input_tokens=1, output_tokens=1, cost_usd=0.0)\n"
        "print(a.provider, b.provider, list(tm.report().by_provider()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "openai openai ['openai']"


def test_call_record_is_hashable() -> None:
    """hash(CallRecord) works (mappings are compared, not hashed); equal records hash equal."""
    rec = tm.record(**GOOD, cost_usd=0.0, metadata={"k": "v"})
    again = tm.CallRecord.from_dict(rec.to_dict())
    assert again == rec
    assert hash(again) == hash(rec)
    assert len({rec, again}) == 1


def test_module_and_operation_arguments_override_the_scope() -> None:
    """record(module=, operation=) wins over the scope's; None inherits the scope's."""
    with tm.track("s", module="M", operation="O"):
        a = tm.record(**GOOD, cost_usd=0.0)
        b = tm.record(**GOOD, cost_usd=0.0, module="X", operation="Y")
    assert (a.module, a.operation, b.module, b.operation) == ("M", "O", "X", "Y")
    rep = tm.report()
    assert set(rep.by_module()) == {"M", "X"}
    assert set(rep.by_operation()) == {"O", "Y"}


def test_fast_record_is_a_frozen_call_record_with_the_scope_attributes() -> None:
    """A plain record() in a scope with attributes returns a frozen CallRecord equal to one
    built field by field, and tallies every count, cache and reasoning tokens included."""
    with tm.track("s", team="search"):
        rec = tm.record(
            model="gpt-4o-mini",
            input_tokens=100,
            output_tokens=40,
            cache_read_tokens=30,
            cache_write_tokens=20,
            reasoning_tokens=10,
            cost_usd=0.25,
        )
    same = tm.CallRecord(
        "gpt-4o-mini", "openai", 100, 40, 30, 20, 10, 0.25, None, None, ("s",), "manual",
        False, False, rec.timestamp, None, None, {"team": "search"}, None,
    )  # fmt: skip
    assert type(rec) is tm.CallRecord
    assert rec == same
    assert hash(rec) == hash(same)
    assert type(rec.attributes) is types.MappingProxyType
    assert dict(rec.attributes) == {"team": "search"}
    with pytest.raises(AttributeError):
        rec.model = "other"  # type: ignore[misc]
    u = tm.report().node("s").usage
    assert (u.calls, u.input_tokens, u.output_tokens) == (1, 100, 40)
    assert (u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens) == (30, 20, 10)
    assert u.cost_usd == 0.25


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (10**400, "an integer of 401 digits"),
        (-(10**40), "a negative integer of 41 digits"),
        (10**5000, f"an integer of more than {sys.get_int_max_str_digits()} digits"),
        (-(10**5000), f"a negative integer of more than {sys.get_int_max_str_digits()} digits"),
        (-5, "-5"),
    ],
    ids=["401-digits", "negative-41", "5001-digits", "negative-5001", "small"],
)
def test_an_error_names_a_huge_integer_by_its_size(value: int, said: str) -> None:
    """record(input_tokens=10**5000) says how big the integer is (its text would not fit)."""
    msg = f"input_tokens must be a non-negative integer below 2**63, got {said}"
    with pytest.raises(ValueError) as caught:
        tm.Meter().record(model="gpt-4o-mini", input_tokens=value, output_tokens=1, cost_usd=0.1)
    assert str(caught.value) == msg
