"""Profile exports: speedscope (checked against its schema), folded stacks, Chrome trace."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jsonschema
import litellm
import pytest

import tokenmeter as tm
from tokenmeter._export import export_text, to_chrome_trace, to_folded, to_speedscope

ROOT = Path(__file__).resolve().parent.parent
#: Put there by `make test` (npm pack speedscope); never committed.
SCHEMA = ROOT / ".cache/speedscope/package/dist/release/file-format-schema.json"


def sample_report() -> tm.Report:
    """agent ($0.01) > plan x2 ($0.002, 150 tokens each), a;b ($0.03 + unpriced); a root call."""
    meter = tm.Meter(keep_records=True)
    meter.record(model="gpt-4o", input_tokens=1, output_tokens=1, cost_usd=0.005)
    with meter.track("agent"):
        tm.record(model="gpt-4o", input_tokens=100, output_tokens=20, cost_usd=0.01)
        for _ in range(2):
            with meter.track("plan"):
                tm.record(model="gpt-4o-mini", input_tokens=100, output_tokens=50, cost_usd=0.002)
        with meter.track("a;b"):
            tm.record(model="claude", input_tokens=7, output_tokens=3, cost_usd=0.03)
            tm.record(model="acme", input_tokens=5, output_tokens=5)
    return meter.report()


def test_folded_stacks_sum_to_the_total() -> None:
    """Folded stacks: one line per scope with own usage; weights sum to the report total."""
    rep = sample_report()
    lines = to_folded(rep).splitlines()
    assert lines == [
        "(no scope) 50000000",
        "agent 100000000",
        "agent;plan 40000000",
        "agent;a_b 300000000",
    ]
    assert sum(int(x.rsplit(" ", 1)[1]) for x in lines) == round(rep.total.cost_usd * 1e10)
    tokens = to_folded(rep, "tokens").splitlines()
    assert sum(int(x.rsplit(" ", 1)[1]) for x in tokens) == rep.total.total_tokens == 442
    calls = to_folded(rep, "calls").splitlines()
    assert sum(int(x.rsplit(" ", 1)[1]) for x in calls) == rep.total.calls == 6
    with pytest.raises(ValueError, match="weight must be one of"):
        to_folded(rep, "dollars")


def _schema() -> dict[str, object]:
    if not SCHEMA.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SCHEMA} is missing: `make test` fetches it with npm pack")
        pytest.skip(f"{SCHEMA} is missing: run `make speedscope-schema`")
    data: dict[str, object] = json.loads(SCHEMA.read_text())
    return data


def test_speedscope_matches_its_published_schema() -> None:
    """The speedscope file validates against speedscope's own JSON schema, weights exact."""
    rep = sample_report()
    data = json.loads(export_text(rep, "speedscope"))
    schema = _schema()
    jsonschema.validate(data, {**schema, "$ref": "#/definitions/FileFormat.File"})
    cost, tokens, calls = data["profiles"]
    frames = [f["name"] for f in data["shared"]["frames"]]
    assert frames == ["(no scope)", "agent", "plan", "a;b"]
    assert cost["samples"] == [[0], [1], [1, 2], [1, 3]]
    assert cost["weights"] == [50000000, 100000000, 40000000, 300000000]
    assert cost["endValue"] == sum(cost["weights"])
    assert tokens["weights"] == [2, 120, 300, 20]
    assert calls["weights"] == [1, 1, 2, 2]


def test_speedscope_schema_rejects_a_broken_file() -> None:
    """The schema check can fail: a profile without weights is refused."""
    data = to_speedscope(sample_report())
    del data["profiles"][0]["weights"]
    schema = _schema()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, {**schema, "$ref": "#/definitions/FileFormat.File"})


def test_chrome_trace_one_complete_event_per_call() -> None:
    """Each LiteLLM call is one complete event on its scope's track, timed by the call."""
    meter = tm.Meter(keep_records=True)
    with meter.track("agent"):
        for answer in ("one", "two"):
            litellm.completion(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                mock_response=answer,
            )
        with meter.track("tool"):
            tm.record(model="gpt-4o", input_tokens=3, output_tokens=4, cost_usd=0.25)
    rep = meter.report()
    data = json.loads(export_text(rep, "chrome-trace"))
    calls = [e for e in data["traceEvents"] if e["ph"] == "X"]
    assert len(calls) == len(rep.records) == 3
    tracks = {
        e["tid"]: e["args"]["name"] for e in data["traceEvents"] if e["name"] == "thread_name"
    }
    assert [tracks[e["tid"]] for e in calls] == ["agent", "agent", "agent/tool"]
    first, second, manual = calls
    assert first["ts"] == 0
    assert first["dur"] > 0
    assert second["ts"] >= first["ts"] + first["dur"] - 1
    assert (manual["dur"], manual["args"]["cost_usd"], manual["args"]["input_tokens"]) == (
        0,
        0.25,
        3,
    )
    assert first["args"]["scope"] == "agent"
    assert first["name"] == "gpt-4o-mini"


def test_chrome_trace_overlapping_calls_get_their_own_lanes() -> None:
    """Calls on one scope that overlap in time go on separate tracks: slices never overlap."""
    meter = tm.Meter(keep_records=True)
    now = time.time()
    with meter.track("pool"):
        for end in (now + 1.0, now + 1.5, now + 3.0):
            tm.record(model="m", input_tokens=1, output_tokens=1, cost_usd=0.0, timestamp=end)
    rep = meter.report()
    recs = [r.__class__(**{**_fields(r), "duration_s": 1.0}) for r in rep.records]
    rep = tm.Report(rep.root, rep.meta, recs)
    data = to_chrome_trace(rep)
    tracks = {
        e["tid"]: e["args"]["name"] for e in data["traceEvents"] if e["name"] == "thread_name"
    }
    calls = [e for e in data["traceEvents"] if e["ph"] == "X"]
    assert [(tracks[e["tid"]], e["ts"]) for e in calls] == [
        ("pool", 0.0),
        ("pool #2", 500000.0),
        ("pool", 2000000.0),
    ]


def _fields(r: tm.CallRecord) -> dict[str, object]:
    import attrs

    return attrs.asdict(r, recurse=False)


def test_chrome_trace_needs_records() -> None:
    """A report without per-call records: ValueError saying how to keep them."""
    meter = tm.Meter()
    with meter.track("x"):
        tm.record(model="m", input_tokens=1, output_tokens=1, cost_usd=0.1)
    with pytest.raises(ValueError, match=r"needs per-call records .*keep_records=True"):
        to_chrome_trace(meter.report())
