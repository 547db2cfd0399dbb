"""A real LLM-PPOpt usage export, replayed through tm.record, reproduces its own statistics."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import litellm
import pytest

import tokenmeter as tm

DATA = Path(__file__).parent / "data" / "llm-ppopt-token-usage.json"
EXPORT: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
RECORDS: list[dict[str, Any]] = EXPORT["records"]
STATS: dict[str, Any] = EXPORT["statistics"]

#: The file's own summary and per-module table, written out (calls, in, out, total).
SUMMARY = (246, 357_108, 84_463, 441_571)
BY_MODULE = {
    "persona_formulation": (30, 8_733, 14_722, 23_455),
    "query_generation": (25, 43_440, 2_175, 45_615),
    "distractor": (34, 18_661, 6_840, 25_501),
    "interaction_generation": (157, 286_274, 60_726, 347_000),
}


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


def _replay(meter: tm.Meter, cost_usd: float | None) -> tm.Report:
    """Each record inside a scope per module, with its module, operation and metadata."""
    with meter.track("ppopt"):
        for r in RECORDS:
            with meter.track(r["module"], module=r["module"]):
                meter.record(
                    model=r["model"],
                    provider=r["provider"],
                    input_tokens=r["input_tokens"],
                    output_tokens=r["output_tokens"],
                    operation=r["operation"],
                    metadata=r["metadata"],
                    cost_usd=cost_usd,
                    timestamp=_ts(r["timestamp"]),
                )
    return meter.report()


def _row(u: tm.Usage) -> tuple[int, int, int, int]:
    return (u.calls, u.input_tokens, u.output_tokens, u.total_tokens)


def test_the_file_is_self_consistent() -> None:
    """The export holds 246 records whose total_tokens are input + output, as its summary says."""
    assert len(RECORDS) == STATS["summary"]["total_calls"] == 246
    assert all(r["total_tokens"] == r["input_tokens"] + r["output_tokens"] for r in RECORDS)
    summary = STATS["summary"]
    assert (
        summary["total_calls"],
        summary["total_input_tokens"],
        summary["total_output_tokens"],
        summary["total_tokens"],
    ) == SUMMARY


@pytest.mark.parametrize("cost_usd", [None, 0.001])
def test_replay_reproduces_summary(cost_usd: float | None) -> None:
    """Replayed, the total is 246 calls / 357,108 in / 84,463 out / 441,571 tokens."""
    rep = _replay(tm.Meter(), cost_usd)
    s = STATS["summary"]
    expected = (
        s["total_calls"],
        s["total_input_tokens"],
        s["total_output_tokens"],
        s["total_tokens"],
    )
    assert _row(rep.total) == expected == SUMMARY
    assert _row(rep.node("ppopt").usage) == SUMMARY


@pytest.mark.parametrize("cost_usd", [None, 0.001])
def test_replay_reproduces_by_module(cost_usd: float | None) -> None:
    """Every row of the file's by_module table: calls, input, output and total tokens."""
    rep = _replay(tm.Meter(), cost_usd)
    from_file = {
        m: (row["call_count"], row["input_tokens"], row["output_tokens"], row["total_tokens"])
        for m, row in STATS["by_module"].items()
    }
    assert from_file == BY_MODULE
    assert {m: _row(u) for m, u in rep.by_module().items()} == BY_MODULE
    for module, row in BY_MODULE.items():
        node = rep.node("ppopt", module)
        assert _row(node.usage) == row
        assert node.entries == row[0]


def test_replay_reproduces_by_model() -> None:
    """by_model of the file (keyed provider/model) matches the breakdown, and by_model by model."""
    rep = _replay(tm.Meter(), 0.0)
    per_key: dict[str, tm.Usage] = {}
    for node in rep.walk():
        for (model, provider, _module, _operation), u in node.breakdown.items():
            key = f"{provider}/{model}"
            per_key[key] = per_key.get(key, tm.Usage()) + u
    expected = {
        key: (row["call_count"], row["input_tokens"], row["output_tokens"], row["total_tokens"])
        for key, row in STATS["by_model"].items()
    }
    assert {k: _row(u) for k, u in per_key.items()} == expected
    by_model = {k: _row(u) for k, u in rep.by_model().items()}
    assert by_model == {key.split("/", 1)[1]: row for key, row in expected.items()}
    assert by_model["gpt-5.2"] == (173, 292_197, 36_941, 329_138)
    assert {k: u.calls for k, u in rep.by_provider().items()} == {"openai": 201, "openrouter": 45}


def test_replay_by_operation_matches_the_records() -> None:
    """by_operation counts match the records: e.g. 80 assistant_response, 77 user_feedback."""
    rep = _replay(tm.Meter(), 0.0)
    expected = Counter(r["operation"] for r in RECORDS)
    assert {k: u.calls for k, u in rep.by_operation().items()} == dict(expected)
    assert rep.by_operation()["assistant_response"].calls == 80
    assert rep.by_operation()["user_feedback"].calls == 77


def test_replay_fixed_cost_is_exact() -> None:
    """At $0.001 a call the total is exactly $0.246 and each module costs calls x $0.001."""
    rep = _replay(tm.Meter(), 0.001)
    assert rep.total.cost_usd == 0.246
    assert rep.total.unpriced_calls == 0
    for module, row in BY_MODULE.items():
        assert rep.by_module()[module].cost_usd == row[0] / 1000


def test_replay_priced_from_litellm() -> None:
    """cost None: gpt-4o-mini calls are priced from LiteLLM's map; priced + unpriced == 246."""
    rep = _replay(tm.Meter(), None)
    total = rep.total
    assert total.priced_calls + total.unpriced_calls == 246
    mini = rep.by_model()["gpt-4o-mini"]
    entry = litellm.model_cost["gpt-4o-mini"]
    expected = (
        mini.input_tokens * entry["input_cost_per_token"]
        + mini.output_tokens * entry["output_cost_per_token"]
    )
    assert (mini.calls, mini.unpriced_calls) == (28, 0)
    assert mini.cost_usd == pytest.approx(expected, rel=1e-9)
    assert total.cost_usd >= mini.cost_usd


def test_replay_on_the_default_meter_with_module_scopes() -> None:
    """Through tm.track/tm.record (default meter, module= on the scope) the numbers are the same."""
    for r in RECORDS:
        with tm.track(r["module"], module=r["module"], operation=r["operation"]):
            tm.record(
                model=r["model"],
                provider=r["provider"],
                input_tokens=r["input_tokens"],
                output_tokens=r["output_tokens"],
                metadata=r["metadata"],
                cost_usd=0.0,
            )
    rep = tm.report()
    assert _row(rep.total) == SUMMARY
    assert {m: _row(u) for m, u in rep.by_module().items()} == BY_MODULE
    assert {m: _row(rep.node(m).usage) for m in BY_MODULE} == BY_MODULE


def test_replay_records_and_time_span_survive_save_and_load(tmp_path: Path) -> None:
    """With records kept, save/load keeps the 246 records (and metadata) and the time span."""
    meter = tm.Meter(keep_records=True)
    rep = _replay(meter, 0.001)
    path = tmp_path / "ppopt.json"
    rep.save(path, include_records=True)
    back = tm.Report.load(path)
    assert _row(back.total) == SUMMARY
    assert {m: _row(u) for m, u in back.by_module().items()} == BY_MODULE
    assert len(back.records) == 246
    assert [dict(r.metadata) for r in back.records] == [r["metadata"] for r in RECORDS]
    assert [r.operation for r in back.records] == [r["operation"] for r in RECORDS]
    first = min(_ts(r["timestamp"]) for r in RECORDS)
    last = max(_ts(r["timestamp"]) for r in RECORDS)
    assert back.meta["started_at"] == dt.datetime.fromtimestamp(first, dt.timezone.utc).isoformat()
    assert back.meta["ended_at"] == dt.datetime.fromtimestamp(last, dt.timezone.utc).isoformat()
    assert back.meta["started_at"].startswith("2026-01-31T15:14:06")
