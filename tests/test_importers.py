"""tokenmeter.importers: LLM-PPOpt TokenTracker exports loaded into reports."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tokenmeter as tm
from tokenmeter.importers import llm_ppopt_statistics, load_llm_ppopt, read_llm_ppopt

DATA = Path(__file__).parent / "data" / "llm-ppopt-token-usage.json"
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def export() -> dict[str, Any]:
    """The parsed LLM-PPOpt export shipped in tests/data."""
    with open(DATA, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


@pytest.fixture
def data(export: dict[str, Any]) -> dict[str, Any]:
    """A copy of the export that a test may change."""
    return copy.deepcopy(export)


def test_summary_equals_the_files_statistics() -> None:
    """The loaded total is the file's summary: 246 calls, 357,108 in, 84,463 out, 441,571 total."""
    total = load_llm_ppopt(DATA).total
    assert (total.calls, total.input_tokens, total.output_tokens, total.total_tokens) == (
        246,
        357_108,
        84_463,
        441_571,
    )
    assert (total.cache_read_tokens, total.reasoning_tokens, total.failed_calls) == (0, 0, 0)


def test_by_module_equals_the_files_table() -> None:
    """by_module() gives the file's per-module calls and tokens, module by module."""
    got = {
        m: (u.calls, u.input_tokens, u.output_tokens, u.total_tokens)
        for m, u in load_llm_ppopt(DATA).by_module().items()
    }
    assert got == {
        "persona_formulation": (30, 8_733, 14_722, 23_455),
        "query_generation": (25, 43_440, 2_175, 45_615),
        "distractor": (34, 18_661, 6_840, 25_501),
        "interaction_generation": (157, 286_274, 60_726, 347_000),
    }


def test_by_model_and_provider_equal_the_files_table(export: dict[str, Any]) -> None:
    """The file's by_model, keyed 'provider/model', is tokenmeter's model x provider split."""
    rep = load_llm_ppopt(DATA)
    assert llm_ppopt_statistics(rep)["by_model"] == export["statistics"]["by_model"]
    assert {m: u.calls for m, u in rep.by_model().items()} == {
        "gpt-5.2": 173,
        "gpt-4o-mini": 28,
        "x-ai/grok-4.1-fast": 11,
        "google/gemini-3-flash-preview": 9,
        "anthropic/claude-sonnet-4.5": 8,
        "anthropic/claude-haiku-4.5": 6,
        "meta-llama/llama-3.1-405b-instruct": 6,
        "mistralai/ministral-8b-2512": 5,
    }
    by_provider = rep.by_provider()
    assert {p: u.calls for p, u in by_provider.items()} == {"openai": 201, "openrouter": 45}
    assert by_provider["openrouter"].input_tokens == 44_611
    assert by_provider["openrouter"].output_tokens == 35_310


def test_statistics_block_is_reproduced_exactly(export: dict[str, Any]) -> None:
    """llm_ppopt_statistics of the report, and of the records, equal the file's statistics."""
    assert llm_ppopt_statistics(load_llm_ppopt(DATA)) == export["statistics"]
    assert llm_ppopt_statistics(read_llm_ppopt(DATA)) == export["statistics"]


def test_tree_is_module_then_operation() -> None:
    """The default tree has one node per module and, under it, one per operation."""
    rep = load_llm_ppopt(DATA)
    assert {name: sorted(n.children) for name, n in rep.root.children.items()} == {
        "persona_formulation": ["formulate_system_prompt"],
        "query_generation": ["style_transfer_full", "style_transfer_partial"],
        "distractor": [
            "intent_extraction",
            "noise_generation_incomplete_info",
            "noise_generation_semantic_ambiguity",
            "noise_generation_surface_noise",
        ],
        "interaction_generation": ["assistant_response", "user_feedback"],
    }
    feedback = rep.node("interaction_generation", "user_feedback")
    assert (feedback.usage.calls, feedback.usage.input_tokens, feedback.usage.output_tokens) == (
        77,
        217_597,
        8_480,
    )
    assert feedback.entries == 0
    assert rep.node("interaction_generation").self_usage == tm.Usage()


def test_tree_by_model_and_flat() -> None:
    """tree=("provider", "model") nests models under providers; tree=() keeps all on the root."""
    rep = load_llm_ppopt(DATA, tree=("provider", "model"), price=False)
    assert sorted(rep.root.children) == ["openai", "openrouter"]
    assert rep.node("openai", "gpt-5.2").usage.calls == 173
    assert rep.node("openrouter", "x-ai/grok-4.1-fast").usage.input_tokens == 10_175
    flat = load_llm_ppopt(DATA, tree=(), price=False)
    assert flat.root.children == {}
    assert flat.root.self_usage.calls == 246


def test_records_carry_every_field() -> None:
    """The first record: model, provider, module, operation, path, tokens, metadata and time."""
    rec = read_llm_ppopt(DATA, timezone=UTC)[0]
    assert (rec.model, rec.provider, rec.module, rec.operation) == (
        "gpt-5.2",
        "openai",
        "persona_formulation",
        "formulate_system_prompt",
    )
    assert rec.path == ("persona_formulation", "formulate_system_prompt")
    assert (rec.input_tokens, rec.output_tokens, rec.total_tokens) == (283, 434, 717)
    assert dict(rec.metadata) == {"attempt": 1, "persona_features_count": 17}
    assert rec.kind == "imported"
    assert rec.timestamp == dt.datetime(2026, 1, 31, 15, 14, 6, 431575, tzinfo=UTC).timestamp()


def test_naive_timestamps_default_to_local_time(export: dict[str, Any]) -> None:
    """Without timezone=, the file's zone-less timestamps are read as this machine's local time."""
    rec = read_llm_ppopt(DATA, price=False)[0]
    assert rec.timestamp == dt.datetime.fromisoformat(export["records"][0]["timestamp"]).timestamp()


def test_timestamps_with_an_offset_keep_it(data: dict[str, Any]) -> None:
    """A 'Z' or '+02:00' timestamp is read as written, whatever timezone= says."""
    data["records"][0]["timestamp"] = "2026-01-31T15:14:06Z"
    data["records"][1]["timestamp"] = "2026-01-31T17:14:06+02:00"
    recs = read_llm_ppopt(data, price=False, timezone=dt.timezone(dt.timedelta(hours=-5)))
    expected = dt.datetime(2026, 1, 31, 15, 14, 6, tzinfo=UTC).timestamp()
    assert (recs[0].timestamp, recs[1].timestamp) == (expected, expected)


def test_report_spans_the_files_time_range() -> None:
    """The report's started_at/ended_at are the first and last record times."""
    meta = load_llm_ppopt(DATA, timezone=UTC).meta
    assert meta["started_at"] == "2026-01-31T15:14:06.431575+00:00"
    assert meta["ended_at"] == "2026-01-31T15:26:42.770433+00:00"


def test_priced_from_litellm_and_unknown_models_unpriced() -> None:
    """gpt-5.2 and gpt-4o-mini are priced from LiteLLM's map; the 45 OpenRouter calls aren't."""
    rep = load_llm_ppopt(DATA)
    by_model = rep.by_model()
    assert by_model["gpt-5.2"].cost_usd == 1.02851875  # 292,197 x $1.75/M + 36,941 x $14/M
    assert by_model["gpt-4o-mini"].cost_usd == 0.0103722  # 20,300 x $0.15/M + 12,212 x $0.60/M
    assert by_model["x-ai/grok-4.1-fast"].unpriced_calls == 11
    assert by_model["x-ai/grok-4.1-fast"].cost_usd == 0.0
    assert rep.total.unpriced_calls == 45
    assert rep.total.cost_usd == 1.03889095


def test_custom_prices_apply_to_openrouter_models() -> None:
    """tm.set_price('openrouter/x-ai/grok-4.1-fast', ...) prices those 11 calls: $0.008142."""
    tm.set_price("openrouter/x-ai/grok-4.1-fast", input_per_mtok=0.2, output_per_mtok=0.5)
    rep = load_llm_ppopt(DATA)
    grok = rep.by_model()["x-ai/grok-4.1-fast"]
    assert (grok.cost_usd, grok.unpriced_calls) == (0.008142, 0)
    assert rep.total.unpriced_calls == 34
    assert rep.total.cost_usd == 1.04703295


def test_price_false_leaves_every_call_unpriced() -> None:
    """price=False: 246 unpriced calls and $0 of known cost."""
    total = load_llm_ppopt(DATA, price=False).total
    assert (total.unpriced_calls, total.cost_usd) == (246, 0.0)


def test_accepts_a_dict_or_a_list_of_records(data: dict[str, Any]) -> None:
    """The parsed export, or its records list (get_all_records()), load like the file."""
    from_file = load_llm_ppopt(DATA, price=False).total
    assert load_llm_ppopt(data, price=False).total == from_file
    assert load_llm_ppopt(data["records"], price=False).total == from_file
    assert load_llm_ppopt(str(DATA), price=False).total == from_file


def test_loading_leaves_the_default_meter_alone() -> None:
    """Loading builds its own tree: the default meter still has no calls."""
    load_llm_ppopt(DATA)
    assert tm.report().total == tm.Usage()


def test_save_and_load_keep_the_numbers(tmp_path: Path) -> None:
    """An imported report saved with its records loads back with the same total and tree."""
    rep = load_llm_ppopt(DATA, timezone=UTC)
    rep.save(tmp_path / "usage.json", include_records=True)
    back = tm.Report.load(tmp_path / "usage.json")
    assert back.total == rep.total
    assert back.by_module() == rep.by_module()
    assert back.node("distractor", "intent_extraction").usage.calls == 17
    assert len(back.records) == 246
    assert back.records[0] == rep.records[0]


def test_statistics_mismatch_is_an_error(data: dict[str, Any]) -> None:
    """A file whose statistics disagree with its records raises; check_statistics=False loads it."""
    data["statistics"]["by_module"]["distractor"]["input_tokens"] = 1
    with pytest.raises(
        ValueError,
        match=r"by_module\['distractor'\]\['input_tokens'\]: the file says 1, the records add "
        r"up to 18661",
    ):
        load_llm_ppopt(data, price=False)
    assert load_llm_ppopt(data, price=False, check_statistics=False).total.calls == 246


def test_truncated_records_do_not_match_statistics(data: dict[str, Any]) -> None:
    """Dropping a record makes the summary disagree, and the error says by how much."""
    del data["records"][-1]
    with pytest.raises(
        ValueError, match=r"summary\['total_calls'\]: the file says 246, the records add up to 245"
    ):
        load_llm_ppopt(data, price=False)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"foo": 1}, r"not an LLM-PPOpt export: expected a JSON object with a 'records' list"),
        (
            {"statistics": {}},
            r"no 'records' \(it was written with export_to_file\(\.\.\., include_records=False\)\)",
        ),
        ({"records": {"a": 1}}, r"'records' must be a list, got dict"),
        ({"records": "abc"}, r"'records' must be a list, got str"),
        (42, r"not an LLM-PPOpt export: expected a path, .* got int"),
    ],
)
def test_not_an_export_is_a_value_error(source: Any, message: str) -> None:
    """Input that is not an LLM-PPOpt export raises ValueError saying what was expected."""
    with pytest.raises(ValueError, match=message):
        load_llm_ppopt(source)


def test_invalid_json_file_is_a_value_error(tmp_path: Path) -> None:
    """A file that is not JSON raises ValueError naming the path."""
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.json: not an LLM-PPOpt export: invalid JSON"):
        load_llm_ppopt(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"records": [], "n": ' + b"9" * 5000 + b"}", "invalid JSON (Exceeds the limit"),
        (b'{"records": ["\xff"]}', "not UTF-8 text (byte 14)"),
    ],
    ids=["deep", "5000-digits", "latin-1"],
)
def test_unreadable_json_file_is_a_value_error_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """A file nested too deeply, with a number too long, or not UTF-8: ValueError naming it."""
    path = tmp_path / "odd.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(f"{path}: not an LLM-PPOpt export: {message}")):
        load_llm_ppopt(path)


def test_a_key_twice_in_a_file_is_a_value_error_naming_it(tmp_path: Path) -> None:
    """An export whose second record has input_tokens twice: ValueError naming file and place."""
    data = json.loads(DATA.read_text(encoding="utf-8"))
    data["records"][1]["__second__"] = 1
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(data).replace('"__second__"', '"input_tokens"'))
    with pytest.raises(ValueError) as info:
        load_llm_ppopt(path)
    assert str(info.value) == f"{path}: records[1]: duplicate key 'input_tokens'"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_bare_nan_in_a_file_is_a_value_error_naming_it(tmp_path: Path, constant: str) -> None:
    """A record's metadata holding a bare NaN or infinity: ValueError naming the file, as load."""
    data = json.loads(DATA.read_text(encoding="utf-8"))
    data["records"][1]["metadata"]["score"] = "__constant__"
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(data).replace('"__constant__"', constant))
    with pytest.raises(ValueError) as info:
        load_llm_ppopt(path)
    assert str(info.value) == (
        f"{path}: not an LLM-PPOpt export: invalid JSON ({constant} is not a JSON number)"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("input_tokens", -5, r"record 3: input_tokens must be a non-negative integer, got -5"),
        (
            "output_tokens",
            "12",
            r"record 3: output_tokens must be a non-negative integer, got '12'",
        ),
        ("input_tokens", True, r"record 3: input_tokens must be a non-negative integer, got True"),
        ("input_tokens", 1.5, r"record 3: input_tokens must be a non-negative integer, got 1.5"),
        (
            "output_tokens",
            2**63,
            r"record 3: output_tokens must be below 2\*\*63 \(as in tm.record\), "
            r"got 9223372036854775808",
        ),
        ("model", "", r"record 3: model must be a non-empty string, got ''"),
        ("module", None, r"record 3: module must be a non-empty string, got None"),
        ("operation", 7, r"record 3: operation must be a non-empty string, got 7"),
        ("provider", "", r"record 3: provider must be a non-empty string, got ''"),
        ("total_tokens", 1, r"record 3: total_tokens \(1\) is not input_tokens \+ output_tokens"),
        (
            "timestamp",
            "yesterday",
            r"record 3: timestamp must be an ISO 8601 string, got 'yesterday'",
        ),
        (
            "timestamp",
            1738336446,
            r"record 3: timestamp must be an ISO 8601 string, got 1738336446",
        ),
        ("metadata", [1, 2], r"record 3: metadata must be an object, got list"),
    ],
)
def test_bad_record_names_its_index_and_field(
    data: dict[str, Any], field: str, value: Any, message: str
) -> None:
    """A malformed record raises ValueError naming the record's index, the field and the value."""
    data["records"][3][field] = value
    with pytest.raises(ValueError, match=message):
        load_llm_ppopt(data, price=False)


def test_record_that_is_not_an_object(data: dict[str, Any]) -> None:
    """A record that is not a JSON object raises ValueError naming its index."""
    data["records"][0] = ["gpt-5.2", 1, 2]
    with pytest.raises(ValueError, match=r"record 0: expected a JSON object, got list"):
        read_llm_ppopt(data, price=False)


def test_missing_optional_fields_are_allowed(data: dict[str, Any]) -> None:
    """Without total_tokens, timestamp, metadata or provider a record loads; provider is derived."""
    import litellm  # noqa: F401 - provider_for asks LiteLLM's map once litellm is imported

    rec = data["records"][0]
    for key in ("total_tokens", "timestamp", "metadata", "provider"):
        del rec[key]
    data["records"] = [rec]
    (out,) = read_llm_ppopt(data, price=False)
    assert (out.input_tokens, out.output_tokens, out.timestamp, dict(out.metadata)) == (
        283,
        434,
        0.0,
        {},
    )
    assert out.provider == "openai"


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (
            ("module", "persona"),
            r"tree: unknown field 'persona'; choose from "
            r"\['module', 'operation', 'model', 'provider'\]",
        ),
        ("module", r"tree must be a sequence of field names, got the string 'module'"),
    ],
)
def test_bad_tree_is_a_value_error(tree: Any, message: str) -> None:
    """tree= naming an unknown field, or given as one string, raises ValueError."""
    with pytest.raises(ValueError, match=message):
        load_llm_ppopt(DATA, tree=tree)


def test_statistics_of_a_live_report() -> None:
    """llm_ppopt_statistics works on any report: calls without a module count under '(none)'."""
    with tm.track("job"):
        tm.record(model="gpt-4o-mini", input_tokens=10, output_tokens=5, module="m", cost_usd=0.0)
        tm.record(model="gpt-4o-mini", input_tokens=1, output_tokens=2, cost_usd=0.0)
    assert llm_ppopt_statistics(tm.report()) == {
        "summary": {
            "total_calls": 2,
            "total_input_tokens": 11,
            "total_output_tokens": 7,
            "total_tokens": 18,
        },
        "by_module": {
            "m": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "call_count": 1},
            "(none)": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3, "call_count": 1},
        },
        "by_model": {
            "openai/gpt-4o-mini": {
                "input_tokens": 11,
                "output_tokens": 7,
                "total_tokens": 18,
                "call_count": 2,
            }
        },
    }


def test_importing_the_importers_is_light() -> None:
    """import tokenmeter.importers imports neither litellm nor tinyagent."""
    code = (
        "import sys, tokenmeter.importers, tokenmeter.integrations\n"
        "print(sorted(m for m in ('litellm', 'tinyagent') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert out.stdout.strip() == "[]"
