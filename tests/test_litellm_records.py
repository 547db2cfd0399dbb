"""Kept records of LiteLLM calls: read back with every field exactly as the call made it."""

from __future__ import annotations

import gc
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import litellm
import pytest
from litellm import ModelResponse, Usage

import tokenmeter as tm
from tests.fakeproviders import FakeOpenAI
from tokenmeter import _events

MSGS = [{"role": "user", "content": "hi"}]
# LiteLLM's mock usage for a string mock_response: 10 prompt, 20 completion tokens, priced at
# gpt-4o-mini's $1.5e-7 / $6e-7 a token: 135,000 units of 1e-10 USD.
MOCK_COST = 135_000 / 1e10


class _Clock:
    """The wall-clock and perf_counter bounds of the calls made inside it."""

    def __enter__(self) -> _Clock:
        self.t0, self.p0 = time.time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.t1, self.p1 = time.time(), time.perf_counter()


def _pinned(rec: tm.CallRecord, clock: _Clock, call_id: str | None = "uuid", **fields: Any) -> None:
    """``rec`` is exactly ``CallRecord(**fields)`` with its time inside ``clock``, a duration
    no longer than it, and ``call_id`` (``"uuid"``: LiteLLM's, a UUID)."""
    assert type(rec) is tm.CallRecord
    assert type(rec.timestamp) is float
    assert clock.t0 <= rec.timestamp <= clock.t1
    assert type(rec.duration_s) is float
    assert 0 < rec.duration_s <= clock.p1 - clock.p0
    if call_id == "uuid":
        assert type(rec.call_id) is str
        assert str(uuid.UUID(rec.call_id)) == rec.call_id
        call_id = rec.call_id
    expected = tm.CallRecord(
        timestamp=rec.timestamp, duration_s=rec.duration_s, call_id=call_id, **fields
    )
    assert rec == expected
    assert rec.to_dict() == expected.to_dict()
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens"):
        assert type(getattr(rec, name)) is int
    assert type(rec.cost_usd) is type(expected.cost_usd)


def _read_back(meter: tm.Meter) -> list[tm.CallRecord]:
    """The meter's records, after checking every way of reading them gives the same ones."""
    kept = meter.records()
    assert meter.records() == kept
    assert list(meter.report().records) == kept
    return kept


OK = [{"message": {"role": "assistant", "content": "ok"}}]
COMMON = {"module": "M", "path": ("agent",), "kind": "completion", "attributes": {"team": "s"}}


def test_a_plain_call_is_kept_exactly() -> None:
    """A mock completion's record: gpt-4o-mini/openai, 10 in, 20 out, $1.35e-5, LiteLLM's id."""
    meter = tm.Meter(keep_records=True)
    with meter.track("agent", module="M", team="s"), _Clock() as clock:
        resp = litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="hello")
    (rec,) = _read_back(meter)
    _pinned(
        rec, clock, resp._hidden_params["litellm_call_id"], model="gpt-4o-mini",
        provider="openai", input_tokens=10, output_tokens=20, cost_usd=MOCK_COST, **COMMON,
    )  # fmt: skip


def test_a_call_with_cache_and_reasoning_tokens_is_kept_exactly() -> None:
    """400 cached of 1,000 in, 50 reasoning of 200 out, priced $0.00024, kept as they were."""
    usage = Usage(
        prompt_tokens=1000, completion_tokens=200, total_tokens=1200,
        prompt_tokens_details={"cached_tokens": 400},
        completion_tokens_details={"reasoning_tokens": 50},
    )  # fmt: skip
    answer = ModelResponse(model="gpt-4o-mini", usage=usage, choices=OK)
    meter = tm.Meter(keep_records=True)
    with meter.track("agent", module="M", team="s"), _Clock() as clock:
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response=answer)
    (rec,) = _read_back(meter)
    # 600 * 1.5e-7 + 400 * 7.5e-8 + 200 * 6e-7 = 2.4e-4.
    _pinned(
        rec, clock, model="gpt-4o-mini", provider="openai", input_tokens=1000,
        output_tokens=200, cache_read_tokens=400, reasoning_tokens=50,
        cost_usd=2_400_000 / 1e10, **COMMON,
    )  # fmt: skip


def test_a_failed_call_is_kept_exactly() -> None:
    """A call that raised: failed, no tokens, $0, no call id, metadata naming the error."""
    meter = tm.Meter(keep_records=True)
    scope = meter.track("agent", module="M", team="s")
    with scope, _Clock() as clock, pytest.raises(litellm.InternalServerError):
        litellm.completion(
            model="gpt-4o-mini", messages=MSGS, mock_response="litellm.InternalServerError"
        )
    (rec,) = _read_back(meter)
    _pinned(
        rec, clock, None, model="gpt-4o-mini", provider="openai", cost_usd=0.0, failed=True,
        metadata={"error": "InternalServerError"}, **COMMON,
    )  # fmt: skip


def test_a_streamed_call_is_kept_exactly() -> None:
    """A mock stream without usage: 8 in and 3 out estimated, $3e-6, metadata stream=True."""
    meter = tm.Meter(keep_records=True)
    with meter.track("agent", module="M", team="s"), _Clock() as clock:
        stream = litellm.completion(
            model="gpt-4o-mini", messages=MSGS, mock_response="one two three", stream=True
        )
        for _ in stream:
            pass
    (rec,) = _read_back(meter)
    # 8 * 1.5e-7 + 3 * 6e-7 = 3e-6.
    _pinned(
        rec, clock, model="gpt-4o-mini", provider="openai", input_tokens=8, output_tokens=3,
        cost_usd=30_000 / 1e10, estimated=True, metadata={"stream": True}, **COMMON,
    )  # fmt: skip


def test_an_estimated_call_is_kept_exactly(bare: FakeOpenAI) -> None:
    """A server sending no usage: 8 in and 4 out estimated, $3.6e-6, usage_missing."""
    meter = tm.Meter(keep_records=True)
    with meter.track("agent", module="M", team="s"), _Clock() as clock:
        litellm.completion(
            model="openai/gpt-4o-mini", messages=MSGS, api_base=bare.base_url + "/v1",
            api_key="sk-fake",
        )  # fmt: skip
    (rec,) = _read_back(meter)
    _pinned(
        rec, clock, model="gpt-4o-mini", provider="openai", input_tokens=8, output_tokens=4,
        cost_usd=36_000 / 1e10, estimated=True, metadata={"usage_missing": True}, **COMMON,
    )  # fmt: skip


def test_a_router_call_with_a_fallback_is_kept_exactly() -> None:
    """A Router call answered by its fallback: the fallback's model and cost, 3 attempts (the
    call, the failed deployment, the fallback)."""
    router = litellm.Router(
        model_list=[
            {"model_name": "bad", "litellm_params": {
                "model": "gpt-4o", "mock_response": "litellm.InternalServerError"}},
            {"model_name": "good", "litellm_params": {
                "model": "gpt-4o-mini", "mock_response": "fine"}},
        ],
        fallbacks=[{"bad": ["good"]}],
        num_retries=0,
    )  # fmt: skip
    meter = tm.Meter(keep_records=True)
    with meter.track("agent", module="M", team="s"), _Clock() as clock:
        router.completion(model="bad", messages=MSGS)
    (rec,) = _read_back(meter)
    _pinned(
        rec, clock, model="gpt-4o-mini", provider="openai", input_tokens=10, output_tokens=20,
        cost_usd=MOCK_COST, metadata={"attempts": 3}, **COMMON,
    )  # fmt: skip


def _six_calls(meter: tm.Meter, srv: FakeOpenAI) -> None:
    """A plain, a cached, a failed, a streamed, an estimated, a Router and an unpriced call,
    in two scopes."""
    usage = Usage(
        prompt_tokens=300, completion_tokens=900, total_tokens=1200,
        prompt_tokens_details={"cached_tokens": 280, "cache_creation_tokens": 20},
        completion_tokens_details={"reasoning_tokens": 700},
    )  # fmt: skip
    answer = ModelResponse(model="gpt-4o-mini", usage=usage, choices=OK)
    deployment = {"model_name": "r", "litellm_params": {"model": "gpt-4o", "mock_response": "x"}}
    router = litellm.Router(model_list=[deployment])
    with meter.track("a", module="M", operation="O", team="s"):
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="hello")
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response=answer)
        with meter.track("b", user="u"):
            with pytest.raises(litellm.InternalServerError):
                litellm.completion(
                    model="gpt-4o-mini", messages=MSGS, mock_response="litellm.InternalServerError"
                )
            for _ in litellm.completion(
                model="gpt-4o", messages=MSGS, mock_response="a b", stream=True
            ):
                pass
        litellm.completion(
            model="openai/gpt-4o-mini", messages=MSGS, api_base=srv.base_url + "/v1",
            api_key="sk-fake",
        )  # fmt: skip
        router.completion(model="r", messages=MSGS)
        litellm.completion(model="openai/no-such-model", messages=MSGS, mock_response="hello")


def _without_time(recs: list[tm.CallRecord]) -> list[dict[str, Any]]:
    out = []
    for r in recs:
        d = r.to_dict()
        for name in ("timestamp", "time", "duration_s", "call_id"):
            del d[name]
        out.append(d)
    return out


class _Collect:
    """An observer keeping the records it is given."""

    def __init__(self) -> None:
        self.seen: list[tm.CallRecord] = []

    def on_call(self, record: tm.CallRecord, frame: object) -> None:
        self.seen.append(record)


def test_kept_calls_read_back_alike_with_and_without_observers(bare: FakeOpenAI) -> None:
    """Seven calls of seven kinds kept without observers read back as those kept while an
    observer was given their records (all but time and call id), and as the observer's own."""
    assert _events.OBSERVERS == ()
    plain = tm.Meter(keep_records=True)
    _six_calls(plain, bare)
    watched = tm.Meter(keep_records=True)
    collector = _Collect()
    _events.add_observer(collector)
    try:
        _six_calls(watched, bare)
    finally:
        _events.remove_observer(collector)
    kept, seen = _read_back(plain), _read_back(watched)
    assert seen == collector.seen
    assert _without_time(kept) == _without_time(seen)
    assert [(r.path, r.kind, r.failed, r.estimated) for r in kept] == [
        (("a",), "completion", False, False),
        (("a",), "completion", False, False),
        (("a", "b"), "completion", True, False),
        (("a", "b"), "completion", False, True),
        (("a",), "completion", False, True),
        (("a",), "completion", False, False),
        (("a",), "completion", False, False),
    ]
    assert [r.cost_usd for r in kept][-1] is None
    assert [dict(r.attributes) for r in kept] == [{"team": "s"}] * 2 + [
        {"team": "s", "user": "u"}
    ] * 2 + [{"team": "s"}] * 3
    assert (kept[1].cache_read_tokens, kept[1].cache_write_tokens, kept[1].reasoning_tokens) == (
        280,
        20,
        700,
    )


def test_kept_calls_survive_files_resets_and_the_record_bound(
    bare: FakeOpenAI, tmp_path: Path
) -> None:
    """Kept LiteLLM records: a saved report loads them back equal; resetting scope a/b takes
    its 2 out; max_records=4 keeps the newest 4 and counts 3 dropped."""
    meter = tm.Meter(keep_records=True)
    _six_calls(meter, bare)
    kept = _read_back(meter)
    assert list(meter.root.children["a"].children["b"].report().records) == kept[2:4]
    meter.report().save(tmp_path / "r.json", include_records=True)
    assert list(tm.Report.load(tmp_path / "r.json").records) == kept
    meter.root.children["a"].children["b"].reset()
    assert meter.records() == kept[:2] + kept[4:]
    bounded = tm.Meter(keep_records=True, max_records=4)
    _six_calls(bounded, bare)
    assert _without_time(bounded.records()) == _without_time(kept[3:])
    assert bounded.report().records_dropped == 3
    assert meter.report().records_dropped == 0


def test_a_kept_litellm_call_takes_at_most_150_bytes() -> None:
    """10,000 wrapped completions (one response, returned at once) with records kept retain
    at most 150 B each (tracemalloc)."""
    resp = litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="hello")
    calls: list[Callable[..., Any]] = []
    tm.uninstrument()
    real = litellm.completion
    litellm.completion = lambda *a, **k: resp
    try:
        tm.instrument()
        calls.append(litellm.completion)
    finally:
        tm.uninstrument()
        litellm.completion = real
        tm.instrument()
    wrapped = calls[0]
    meter = tm.Meter(keep_records=True, max_records=20_000)
    with meter.track("s"):
        for _ in range(100):  # the scope's tally exists
            wrapped(model="gpt-4o-mini", messages=MSGS)
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for _ in range(10_000):
                wrapped(model="gpt-4o-mini", messages=MSGS)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
    assert len(meter.records()) == 10_100
    assert meter.records()[-1].call_id == resp._hidden_params["litellm_call_id"]
    assert grown / 10_000 <= 150
