"""Kept records: stored compactly, read back as the `CallRecord`s ``record()`` returned."""

from __future__ import annotations

import gc
import inspect
import os
import subprocess
import sys
import tracemalloc

import pytest

import tokenmeter as tm
from tokenmeter._acc import ACC_SIZE, count_call
from tokenmeter._subtree import add_tree, export_tree


def _mixed_calls(meter: tm.Meter) -> list[tm.CallRecord]:
    """Plain and general manual records, in and out of scopes with attributes."""
    out = [meter.record(model="gpt-4o-mini", input_tokens=1, output_tokens=2, cost_usd=0.5)]
    with meter.track("a", module="M", team="search"):
        out.append(
            meter.record(model="gpt-4o-mini", input_tokens=10, output_tokens=5, cost_usd=1.5)
        )
        out.append(
            meter.record(
                model="openai/x", input_tokens=30, output_tokens=20, cache_read_tokens=7,
                cache_write_tokens=3, reasoning_tokens=4, cost_usd=0.25,
            )
        )  # fmt: skip
        with meter.track("b", operation="O", user="u1"):
            out.append(meter.record(model="m/y", input_tokens=3, output_tokens=1, cost_usd=0.0))
            out.append(
                meter.record(
                    model="m/y", input_tokens=3, output_tokens=1, cost_usd=2.0, failed=True,
                    metadata={"k": 1}, module="X", timestamp=1_700_000_000.0,
                )
            )  # fmt: skip
        out.append(meter.record(model="unknown/z", input_tokens=4, output_tokens=4))
    return out


def test_kept_records_equal_the_returned_ones() -> None:
    """meter.records(), report().records and a subtree report's records are CallRecords equal
    to those record() returned, in order, attributes and metadata as read-only mappings."""
    meter = tm.Meter(keep_records=True)
    returned = _mixed_calls(meter)
    kept = meter.records()
    assert kept == returned
    assert [type(r) for r in kept] == [tm.CallRecord] * 6
    assert [r.to_dict() for r in kept] == [r.to_dict() for r in returned]
    assert [dict(r.attributes) for r in kept] == [
        {},
        {"team": "search"},
        {"team": "search"},
        {"team": "search", "user": "u1"},
        {"team": "search", "user": "u1"},
        {"team": "search"},
    ]
    assert [(r.module, r.operation) for r in kept] == [
        (None, None),
        ("M", None),
        ("M", None),
        ("M", "O"),
        ("X", "O"),
        ("M", None),
    ]
    assert list(meter.report().records) == returned
    assert list(meter.root.children["a"].report().records) == returned[1:]
    assert list(meter.root.children["a"].children["b"].report().records) == returned[3:5]


def test_reset_of_a_subtree_drops_its_kept_records() -> None:
    """Resetting scope a/b removes its 2 kept records and leaves the other 4, none dropped."""
    meter = tm.Meter(keep_records=True)
    returned = _mixed_calls(meter)
    meter.root.children["a"].children["b"].reset()
    assert meter.records() == returned[:3] + returned[5:]
    assert meter.report().records_dropped == 0


def test_exported_tree_carries_the_kept_records() -> None:
    """A meter's tree exported and added into another meter brings equal records along."""
    source = tm.Meter(keep_records=True)
    returned = _mixed_calls(source)
    target = tm.Meter(keep_records=True)
    add_tree(target, export_tree(source))
    assert target.records() == returned
    assert target.report().total.calls == 6


def test_max_records_keeps_the_newest_plain_records() -> None:
    """With max_records=3, 5 plain records keep the last 3 and report 2 dropped."""
    meter = tm.Meter(keep_records=True, max_records=3)
    returned = [
        meter.record(model="m/a", input_tokens=n, output_tokens=1, cost_usd=0.5) for n in range(5)
    ]
    assert meter.records() == returned[2:]
    assert meter.report().records_dropped == 2


def test_a_kept_plain_record_takes_at_most_150_bytes() -> None:
    """10,000 plain record() calls with records kept retain at most 150 B each (tracemalloc)."""
    meter = tm.Meter(keep_records=True, max_records=20_000)
    record = meter.record
    with meter.track("s"):
        for _ in range(100):  # the scope's tally exists
            record(model="gpt-4o-mini", input_tokens=10, output_tokens=20, cost_usd=1.5e-5)
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for _ in range(10_000):
                record(model="gpt-4o-mini", input_tokens=10, output_tokens=20, cost_usd=1.5e-5)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
    assert len(meter.records()) == 10_100
    assert grown / 10_000 <= 150


def test_record_and_meter_record_have_one_signature() -> None:
    """tokenmeter.record takes exactly Meter.record's parameters, defaults and annotations."""
    assert inspect.signature(tm.record) == inspect.signature(tm.Meter().record)
    assert tm.record.__doc__ == tm.Meter.record.__doc__


def test_record_follows_the_current_meter_and_meter_record_its_own() -> None:
    """Inside meter A's scope, tm.record lands there; B.record lands on B's root."""
    a, b = tm.Meter(), tm.Meter()
    with a.track("s"):
        on_a = tm.record(model="m/x", input_tokens=1, output_tokens=1, cost_usd=0.5)
        on_b = b.record(model="m/x", input_tokens=2, output_tokens=1, cost_usd=0.5)
    assert (on_a.path, on_b.path) == (("s",), ())
    assert a.report().node("s").usage.input_tokens == 1
    assert b.report().total.input_tokens == 2
    assert tm.report().total.calls == 0


def test_count_call_adds_one_call_to_an_accumulator() -> None:
    """count_call adds 1 call, its tokens, its cost or one unpriced, failed and estimated."""
    acc = [0] * ACC_SIZE
    count_call(acc, 10, 5, 3, 2, 1, 700, False, False)
    count_call(acc, 4, 6, 0, 0, 0, None, True, True)
    # calls, input, cache read, cache write, output, reasoning, cost, unpriced, failed, est.
    assert acc == [2, 14, 3, 2, 11, 1, 700, 1, 1, 1]


def test_counts_past_the_plain_check_are_recorded_exactly() -> None:
    """Counts of 2**30 and 2**62 (beyond plain_counts' one-digit range) and explicit cache
    counts are accepted and tallied exactly; 2**63 is refused naming the field."""
    meter = tm.Meter()
    a = meter.record(model="m/x", input_tokens=2**30, output_tokens=2**62, cost_usd=0.5)
    b = meter.record(
        model="m/x", input_tokens=9, output_tokens=4, cache_read_tokens=int("3"),
        cache_write_tokens=2, reasoning_tokens=1, cost_usd=0.25,
    )  # fmt: skip
    assert (a.input_tokens, a.output_tokens) == (2**30, 2**62)
    assert (b.cache_read_tokens, b.cache_write_tokens, b.reasoning_tokens) == (3, 2, 1)
    u = meter.report().total
    assert (u.calls, u.input_tokens, u.output_tokens) == (2, 2**30 + 9, 2**62 + 4)
    assert (u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens) == (3, 2, 1)
    with pytest.raises(ValueError, match="input_tokens"):
        meter.record(model="m/x", input_tokens=2**63, output_tokens=1, cost_usd=0.5)
    assert meter.report().total.calls == 2


def test_record_priced_by_a_custom_price_leaves_litellm_out() -> None:
    """In a fresh process, record(provider=...) of a model with a custom price and no cost
    prices it ($0.003) without importing litellm; without provider= LiteLLM names it."""
    code = (
        "import sys\n"
        "import tokenmeter as tm\n"
        "tm.set_price('gpt-4o-mini', input_per_mtok=1.0, output_per_mtok=2.0)\n"
        "r = tm.record(model='gpt-4o-mini', input_tokens=1000, output_tokens=1000,"
        " provider='openai')\n"
        "print(r.cost_usd, 'litellm' in sys.modules)\n"
        "r = tm.record(model='gpt-4o-mini', input_tokens=1000, output_tokens=1000)\n"
        "print(r.provider, 'litellm' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["0.003 False", "openai True"]
