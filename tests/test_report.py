"""Reports: snapshots, lookups, breakdowns, the table, projections, export and resets."""

from __future__ import annotations

import importlib.metadata
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import attrs
import pytest

import tokenmeter as tm
from tokenmeter import _atomic, _report

ONE = {"model": "m", "input_tokens": 3, "output_tokens": 2, "cost_usd": 0.01}


def _build(meter: tm.Meter | None = None) -> None:
    """A small tree: agent (1 call) > plan (2 calls, 2 models) and agent > act x3 (3 calls)."""
    rec = tm.record if meter is None else meter.record
    track = tm.track if meter is None else meter.track
    with track("agent", team="t1"):
        rec(
            model="gpt-4o-mini",
            provider="openai",
            input_tokens=100,
            output_tokens=10,
            cost_usd=0.001,
            module="core",
            timestamp=1_700_000_000.0,
        )
        with track("plan", operation="plan"):
            rec(model="gpt-4o-mini", provider="openai", input_tokens=200, cache_read_tokens=50,
                output_tokens=20, cost_usd=0.002)  # fmt: skip
            rec(model="claude-x", provider="anthropic", input_tokens=300, output_tokens=30,
                reasoning_tokens=5, cost_usd=None, metadata={"k": "v"})  # fmt: skip
        for _ in range(3):
            with track("act", module="tools"):
                rec(model="gpt-4o-mini", provider="openai", input_tokens=10, output_tokens=1,
                    cost_usd=0.0005, failed=True, timestamp=1_700_000_100.0)  # fmt: skip


def test_snapshot_does_not_change_with_later_calls() -> None:
    """A report keeps its numbers after more calls; nodes and Usage are frozen."""
    _build()
    rep = tm.report()
    before = (rep.total, rep.node("agent", "plan").usage, rep.node("agent", "act").entries)
    with tm.track("agent"), tm.track("act"):
        tm.record(**ONE)
    assert (rep.total, rep.node("agent", "plan").usage, rep.node("agent", "act").entries) == before
    assert rep.total.calls == 6
    assert tm.report().total.calls == 7
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        rep.root.usage = tm.Usage()  # type: ignore[misc]
    assert isinstance(rep.records, tuple)


def test_total_and_node_numbers() -> None:
    """Totals: 6 calls, 630 in, 50 cached, 63 out, 5 reasoning, $0.0045, 1 unpriced, 3 failed."""
    _build()
    rep = tm.report()
    assert rep.total == tm.Usage(
        calls=6,
        input_tokens=630,
        cache_read_tokens=50,
        output_tokens=63,
        reasoning_tokens=5,
        cost_usd=0.0045,
        unpriced_calls=1,
        failed_calls=3,
    )
    agent = rep.node("agent")
    assert agent.self_usage == tm.Usage(calls=1, input_tokens=100, output_tokens=10, cost_usd=0.001)
    assert agent.usage == rep.total
    act = rep.node("agent", "act")
    assert (act.entries, act.usage.calls, act.usage.cost_usd) == (3, 3, 0.0015)
    assert act.cost_per_entry == pytest.approx(0.0005, rel=1e-12)
    assert act.tokens_per_entry == 11.0
    assert rep.node() is rep.root
    assert list(agent.children) == ["plan", "act"]


def test_node_keyerror_names_what_exists() -> None:
    """node('agent', 'nope') raises KeyError naming the missing scope, where, and the children."""
    _build()
    with pytest.raises(
        KeyError, match=r"no scope 'nope' under 'agent'; children: \['act', 'plan'\]"
    ):
        tm.report().node("agent", "nope")
    with pytest.raises(KeyError, match=r"no scope 'x' under '<root>'; children: \['agent'\]"):
        tm.report().node("x")


def test_breakdowns_sum_to_total() -> None:
    """by_model, by_provider, by_module, by_operation each sum exactly to the total."""
    _build()
    rep = tm.report()
    for by in (rep.by_model(), rep.by_provider(), rep.by_module(), rep.by_operation()):
        assert sum(by.values()) == rep.total
    assert {k: u.calls for k, u in rep.by_model().items()} == {"gpt-4o-mini": 5, "claude-x": 1}
    assert list(rep.by_model()) == ["gpt-4o-mini", "claude-x"]  # costliest first
    assert {k: u.calls for k, u in rep.by_provider().items()} == {"openai": 5, "anthropic": 1}
    assert {k: u.calls for k, u in rep.by_module().items()} == {"core": 1, "(none)": 2, "tools": 3}
    assert {k: u.calls for k, u in rep.by_operation().items()} == {"(none)": 4, "plan": 2}
    assert rep.by_model()["claude-x"].unpriced_calls == 1


def test_str_is_format_and_print_writes_it(capsys: pytest.CaptureFixture[str]) -> None:
    """str(rep) == rep.format(); print() writes that text; print(detailed=True) the detailed one."""
    _build()
    rep = tm.report()
    assert str(rep) == rep.format()
    rep.print()
    assert capsys.readouterr().out == rep.format() + "\n"
    rep.print(detailed=True)
    assert capsys.readouterr().out == rep.format(detailed=True) + "\n"


def test_table_content() -> None:
    """The table shows the header numbers, scope rows with entry counts, and per-entry cost."""
    _build()
    assert "per entry" not in tm.report().format()
    text = tm.report().format(per_entry=True)
    lines = text.splitlines()
    assert lines[0] == ("tokenmeter report: 6 calls, 693 tokens, $0.004500 (1 unpriced, 3 failed)")
    assert any(line.startswith("  agent ") for line in lines)
    assert any(line.startswith("    act x3 ") for line in lines)
    assert any(line.startswith("    · own ") for line in lines)
    i = lines.index("  agent/act x3: $0.000500 and 11 tokens per entry")
    assert lines[i + 1] == "    1,000 would cost about $0.500000"
    assert "* includes calls with no known price" in text


def test_detailed_adds_per_model_lines() -> None:
    """detailed=True adds a '~ model' line per model under each scope; the plain table has none."""
    _build()
    rep = tm.report()
    plain, detailed = rep.format(), rep.format(detailed=True)
    assert "~ " not in plain
    model_lines = [line.strip() for line in detailed.splitlines() if "~ " in line]
    assert len(model_lines) == 4
    assert sorted(line.split()[1] for line in model_lines) == [
        "claude-x",
        "gpt-4o-mini",
        "gpt-4o-mini",
        "gpt-4o-mini",
    ]
    assert len(detailed.splitlines()) == len(plain.splitlines()) + 4


def test_table_fits_80_columns_for_deep_trees_and_big_numbers() -> None:
    """A 10-deep tree of 40-char names with 10^12 tokens and $10^7 costs: every line <= 80."""
    meter = tm.Meter()
    names = [f"{'very_long_scope_name_' * 2}{i}" for i in range(10)]
    tracks = [meter.track(n) for n in names]
    for depth in range(10):
        for t in tracks[: depth + 1]:
            t.__enter__()
        meter.record(
            model="some-provider/an-extremely-long-model-name-for-testing-widths",
            input_tokens=987_654_321_098,
            cache_read_tokens=123_456_789_012,
            output_tokens=876_543_210_987,
            reasoning_tokens=765_432_109_876,
            cost_usd=12_345_678.9,
            failed=True,
            estimated=True,
        )
        meter.record(model="unknown-model-xyz", input_tokens=10**13, output_tokens=10**13)
        for t in reversed(tracks[: depth + 1]):
            t.__exit__(None, None, None)
    for _ in range(12_345):
        with meter.track(names[0]):
            pass
    rep = meter.report()
    for detailed in (False, True):
        text = rep.format(detailed=detailed)
        too_long = [line for line in text.splitlines() if len(line) > 80]
        assert too_long == [], "\n".join(too_long)
    assert len(rep.format(detailed=True).splitlines()) > len(rep.format().splitlines())


def test_empty_report_formats() -> None:
    """An empty meter's table says 0 calls, 0 tokens, $0.000000, and its repr matches."""
    rep = tm.report()
    assert rep.format().splitlines()[0] == "tokenmeter report: 0 calls, 0 tokens, $0.000000"
    assert repr(rep) == "<tokenmeter.Report calls=0 tokens=0 cost_usd=0.000000 unpriced=0>"
    assert rep.total == tm.Usage()
    assert tm.Report.empty().total == tm.Usage()


def test_project_scales_exactly() -> None:
    """25 samples (100 in, 20 out, $0.002) scale to 1,000: $2.0, 120,000 tokens, 1,000 calls."""
    for _ in range(25):
        with tm.track("sample"):
            tm.record(model="m", input_tokens=100, output_tokens=20, cost_usd=0.002)
    node = tm.report().node("sample")
    p = node.project(1000)
    assert isinstance(p, tm.Projection)
    assert (p.measured_entries, p.entries) == (25, 1000)
    assert p.measured.cost_usd == 0.05
    assert p.cost_usd == 2.0
    assert p.total_tokens == 120_000
    assert p.calls == 1000
    assert p.describe("samples") == (
        "these 25 samples cost $0.050000; 1,000 would cost about $2.0000 "
        "(120,000 tokens, 1,000 calls)"
    )
    assert node.cost_per_entry == 0.002
    assert node.tokens_per_entry == 120.0


def test_project_validates() -> None:
    """project(-1) or project(1.5) raise ValueError; a node never entered cannot be scaled."""
    with tm.track("s"):
        tm.record(**ONE)
    node = tm.report().node("s")
    with pytest.raises(ValueError, match="entries"):
        node.project(-1)
    with pytest.raises(ValueError, match="entries"):
        node.project(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no entries"):
        tm.report().root.project(10)
    assert tm.report().root.cost_per_entry is None


# -- export ------------------------------------------------------------------------------


def _assert_same_numbers(a: tm.Report, b: tm.Report) -> None:
    assert a.total == b.total
    nodes_a = {n.path: n for n in a.walk()}
    nodes_b = {n.path: n for n in b.walk()}
    assert nodes_a.keys() == nodes_b.keys()
    for path, na in nodes_a.items():
        nb = nodes_b[path]
        assert (na.name, na.entries, na.usage, na.self_usage) == (
            nb.name,
            nb.entries,
            nb.usage,
            nb.self_usage,
        )
        assert dict(na.breakdown) == dict(nb.breakdown)
        assert list(na.children) == list(nb.children)
    for by in ("by_model", "by_provider", "by_module", "by_operation"):
        assert getattr(a, by)() == getattr(b, by)()


def test_save_load_round_trip_with_records(tmp_path: Path) -> None:
    """save(include_records=True) then Report.load gives equal numbers, records and meta."""
    meter = tm.Meter(keep_records=True)
    _build(meter)
    rep = meter.report()
    path = tmp_path / "usage.json"
    rep.save(path, include_records=True)
    back = tm.Report.load(path)
    _assert_same_numbers(rep, back)
    assert back.records == rep.records
    assert len(back.records) == 6
    assert back.records[2].metadata == {"k": "v"}
    assert back.records[0].attributes == {"team": "t1"}
    assert back.records_dropped == 0
    assert back.meta["started_at"] == rep.meta["started_at"]
    assert back.format() == rep.format()


def test_to_dict_from_dict_round_trip_without_records() -> None:
    """to_dict() -> JSON -> from_dict() keeps every number; records are left out by default."""
    _build()
    rep = tm.report()
    data = json.loads(json.dumps(rep.to_dict()))
    assert "records" not in data
    back = tm.Report.from_dict(data)
    _assert_same_numbers(rep, back)
    assert back.records == ()


def test_json_header_fields(tmp_path: Path) -> None:
    """The JSON has schema, schema_version 2, tokenmeter and litellm versions, and the time span."""
    _build()
    path = tmp_path / "r.json"
    tm.report().save(path)
    data = json.loads(path.read_text())
    assert data["schema"] == "tokenmeter.report"
    assert data["schema_version"] == 2
    assert data["tokenmeter_version"] == tm.__version__
    assert data["prices"]["litellm_version"] == importlib.metadata.version("litellm")
    assert data["started_at"] == "2023-11-14T22:13:20+00:00"  # the earliest timestamp given
    assert data["ended_at"] >= data["started_at"]
    assert data["total"]["total_tokens"] == 693
    assert data["by_model"]["gpt-4o-mini"]["calls"] == 5
    assert [(n["name"], n["parent"]) for n in data["nodes"]] == [
        ("", None),
        ("agent", 0),
        ("plan", 1),
        ("act", 1),
    ]
    assert data["nodes"][0]["path"] == []
    assert "path" not in data["nodes"][1]  # paths follow from the parents


def test_from_dict_rejects_other_schemas() -> None:
    """from_dict refuses a non-tokenmeter document and a newer schema_version."""
    data = tm.report().to_dict()
    with pytest.raises(ValueError, match="not a tokenmeter report"):
        tm.Report.from_dict({**data, "schema": "other"})
    with pytest.raises(ValueError, match="newer"):
        tm.Report.from_dict({**data, "schema_version": 99})


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    """Saving over an existing file replaces it; no temporary file is left behind."""
    path = tmp_path / "usage.json"
    tm.report().save(path)
    _build()
    tm.report().save(str(path))
    assert json.loads(path.read_text())["total"]["calls"] == 6
    assert os.listdir(tmp_path) == ["usage.json"]


def test_saved_file_mode_follows_the_umask(tmp_path: Path) -> None:
    """The saved report gets the mode a plain open() would give (0o666 minus the umask)."""
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "usage.json"
    tm.report().save(path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("where", ["os.replace", "os.fsync", "json.dumps"])
def test_crash_mid_save_leaves_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A crash in json.dumps, fsync or os.replace leaves the old file intact and no temp file."""
    path = tmp_path / "usage.json"
    tm.report().save(path)
    old = path.read_bytes()
    _build()

    def crash(*_: Any, **__: Any) -> Any:
        raise OSError("disk on fire")

    module, name = where.split(".")
    monkeypatch.setattr(f"{_atomic.__name__}.{module}.{name}", crash)
    with pytest.raises(OSError, match="disk on fire"):
        tm.report().save(path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["usage.json"]


def test_from_records_rebuilds_the_tree() -> None:
    """Report.from_records(records) gives the same usage per node (entries are not known)."""
    meter = tm.Meter(keep_records=True)
    _build(meter)
    rep = meter.report()
    rebuilt = tm.Report.from_records([r.to_dict() for r in meter.records()])
    assert rebuilt.total == rep.total
    assert rebuilt.node("agent", "plan").usage == rep.node("agent", "plan").usage
    assert rebuilt.node("agent", "act").entries == 0
    assert rebuilt.by_module() == rep.by_module()


# -- records and memory ------------------------------------------------------------------


def test_records_are_kept_only_when_asked() -> None:
    """The default meter keeps no records; a keep_records meter keeps each, oldest first."""
    _build()
    assert tm.report().records == ()
    meter = tm.Meter(keep_records=True)
    _build(meter)
    recs = meter.records()
    assert [r.path for r in recs] == [
        ("agent",),
        ("agent", "plan"),
        ("agent", "plan"),
        ("agent", "act"),
        ("agent", "act"),
        ("agent", "act"),
    ]
    assert meter.report().records == tuple(recs)
    assert meter.report().node("agent").path == ("agent",)
    sub = meter.report().node("agent", "plan")
    assert sub.usage.calls == 2


def test_max_records_drops_oldest_and_reports_it() -> None:
    """max_records=10 with 25 calls keeps calls 15..24; the report says 15 were dropped."""
    meter = tm.Meter(keep_records=True, max_records=10)
    for i in range(25):
        meter.record(**ONE, metadata={"i": i})
    recs = meter.records()
    assert [r.metadata["i"] for r in recs] == list(range(15, 25))
    rep = meter.report()
    assert rep.records_dropped == 15
    assert rep.total.calls == 25
    assert rep.to_dict(include_records=True)["records_dropped"] == 15


def test_records_dropped_for_a_subtree_report() -> None:
    """A subtree report carries the meter's dropped count, not records outside the subtree."""
    meter = tm.Meter(keep_records=True, max_records=5)
    with meter.track("a") as a:
        for _ in range(3):
            meter.record(**ONE)
    with meter.track("b"):
        for _ in range(2):
            meter.record(**ONE)
    assert a.report().records_dropped == 0
    assert len(a.report().records) == 3
    meter.record(**ONE)
    assert a.report().records_dropped == 1
    assert len(a.report().records) == 2


def test_keep_records_can_be_switched() -> None:
    """keep_records off drops kept records; on again starts a fresh count with nothing dropped."""
    meter = tm.Meter(keep_records=True)
    meter.record(**ONE)
    meter.keep_records = False
    assert meter.records() == []
    meter.record(**ONE)
    meter.keep_records = True
    meter.record(**ONE)
    assert len(meter.records()) == 1
    assert meter.report().records_dropped == 0
    assert meter.report().total.calls == 3


def test_memory_does_not_grow_with_calls() -> None:
    """100,000 records in one scope keep no per-call objects: one dims entry, bounded memory."""
    meter = tm.Meter()
    with meter.track("hot") as hot:
        for _ in range(80_000):
            meter.record(**ONE)
        tracemalloc.start()
        try:
            start, _ = tracemalloc.get_traced_memory()
            for _ in range(20_000):
                meter.record(**ONE)
            end, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert meter.records() == []
    assert meter.report().records == ()
    assert len(hot._dims) == 1
    assert hot.usage.calls == 100_000
    assert end - start < 16 * 1024


# -- resets ------------------------------------------------------------------------------


def test_reset_zeroes_everything() -> None:
    """tm.reset() leaves an empty report: zero total, no scopes, no time span."""
    _build()
    tm.reset()
    rep = tm.report()
    assert rep.total == tm.Usage()
    assert rep.root.children == {}
    assert (rep.meta["started_at"], rep.meta["ended_at"]) == (None, None)


def test_scope_reset_then_report() -> None:
    """Resetting agent/act removes 3 calls and $0.0015 from every ancestor's total."""
    _build()
    with tm.track("agent"), tm.track("act") as act:
        pass
    act.reset()
    rep = tm.report()
    assert rep.total.calls == 3
    assert rep.total.cost_usd == 0.003
    assert rep.node("agent").usage.failed_calls == 0
    assert "act" not in rep.node("agent").children


def test_projection_of_a_scope_with_unpriced_calls_says_it_is_a_lower_bound() -> None:
    """Per-entry estimates over unpriced calls are labelled as lower bounds."""
    for _ in range(2):
        with tm.track("sample"):
            tm.record(model="gpt-4o-mini", input_tokens=10, output_tokens=5, cost_usd=0.001)
            tm.record(model="in-house", provider="local", input_tokens=10, output_tokens=5)
    node = tm.report().node("sample")
    assert node.project(1000).describe("samples") == (
        "these 2 samples cost $0.002000 or more (2 unpriced calls); "
        "1,000 would cost about $1.0000 or more (2 unpriced calls) (30,000 tokens, 2,000 calls)"
    )
    assert "1,000 would cost about $1.000000 or more (2 unpriced calls)" in tm.report().format(
        per_entry=True
    )


def _options_report() -> tm.Report:
    meter = tm.Meter()
    with meter.track("a_scope_name_of_exactly_forty_characters"):
        meter.record(model="gpt-4o-mini", provider="openai", module="search",
                     input_tokens=100, output_tokens=10, cost_usd=0.003)  # fmt: skip
        meter.record(model="claude-x", provider="anthropic", operation="rank",
                     input_tokens=50, output_tokens=5, cost_usd=0.001)  # fmt: skip
    return meter.report()


def test_width_widens_the_name_column() -> None:
    """width=100 shows a 40-character name whole; at 80 it is cut with '…'; lines fit the width."""
    rep = _options_report()
    name = "a_scope_name_of_exactly_forty_characters"
    narrow, wide = rep.format().splitlines(), rep.format(width=100).splitlines()
    assert narrow[4].startswith("  a_scope_name_of_exact… ")
    assert wide[4].startswith(f"  {name}   ")
    assert wide[1].startswith("scope" + " " * 39 + " calls")
    assert max(map(len, wide)) == 100
    assert max(map(len, narrow)) == 80
    assert wide[4][44:] == narrow[4][24:]  # the same number columns after the name


def test_breakdowns_print_as_tables_on_request() -> None:
    """by='model' adds a 'by model' table with a row per model; 'all' adds all four."""
    rep = _options_report()
    assert "by model" not in rep.format()
    lines = rep.format(by="model").splitlines()
    i = lines.index(next(line for line in lines if line.startswith("by model")))
    assert lines[i] == (
        "by model                 calls    input  cached  output reason       cost  share"
    )
    assert lines[i + 1] == "-" * 80
    assert lines[i + 2] == (
        "gpt-4o-mini                  1      100       0      10      0 $0.003000   75.0%"
    )
    assert lines[i + 3] == (
        "claude-x                     1       50       0       5      0 $0.001000   25.0%"
    )
    assert len(lines) == i + 4
    every = rep.format(by="all")
    tables = [line.split()[1] for line in every.splitlines() if line.startswith("by ")]
    assert tables == ["model", "provider", "module", "operation"]
    assert "(none)" in every  # calls with no module or operation
    assert "Usage(" not in every
    assert rep.format(by=["operation", "model"]).count("\nby ") == 2


def test_print_passes_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    """print(width=, by=, per_entry=) prints what format() with the same options returns."""
    rep = _options_report()
    rep.print(width=90, by="provider", per_entry=True)
    assert capsys.readouterr().out == rep.format(width=90, by="provider", per_entry=True) + "\n"
    assert rep.format(per_entry=True).endswith("per entry: no scope was entered more than once")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"width": 40}, "width"),
        ({"width": "wide"}, "width"),
        ({"width": True}, "width"),
        ({"by": "models"}, "by"),
        ({"by": ["model", 3]}, "by"),
        ({"by": 5}, "by"),
    ],
)
def test_bad_format_options_raise(options: dict[str, Any], field: str) -> None:
    """A width under 64 or an unknown breakdown raises ValueError naming the option."""
    with pytest.raises(ValueError, match=f"^{field} must"):
        tm.report().format(**options)


def test_report_nodes_equal_ones_built_field_by_field() -> None:
    """Each node of a report (no calls, one model, two models, with children) is a
    frozen ReportNode equal to one built with ReportNode(...) from the same numbers."""
    meter = tm.Meter()
    kw: dict[str, Any] = {"input_tokens": 10, "output_tokens": 4}
    with meter.track("top"):
        with meter.track("empty"):
            pass
        with meter.track("one"):
            meter.record(model="gpt-4o-mini", cost_usd=0.5, **kw)
        with meter.track("two"):
            meter.record(model="gpt-4o-mini", cost_usd=0.25, **kw)
            meter.record(model="gpt-4o", cost_usd=1.0, **kw)
    rep = meter.report()
    for node in rep.walk():
        assert type(node) is _report.ReportNode
        fields = attrs.fields(_report.ReportNode)
        same = _report.ReportNode(*(getattr(node, a.name) for a in fields))
        assert node == same
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            node.entries = 7  # type: ignore[misc]
    top = rep.node("top")
    assert (top.usage.calls, top.usage.cost_usd, top.self_usage.calls) == (3, 1.75, 0)
    assert rep.node("top", "empty").usage == tm.Usage()
    assert rep.node("top", "empty").entries == 1
    two = rep.node("top", "two")
    assert (two.self_usage.calls, two.self_usage.input_tokens, two.usage.cost_usd) == (2, 20, 1.25)
    assert sorted(k[0] for k in two.breakdown) == ["gpt-4o", "gpt-4o-mini"]
    assert rep.total.calls == 3


def test_print_shows_a_name_the_stream_cannot_encode_escaped() -> None:
    """rep.print() to a strict UTF-8 or ASCII stream shows a lone surrogate, or é, escaped."""
    import io

    meter = tm.Meter()
    with meter.track("caf\udce9"):
        meter.record(model="gpt-4o", input_tokens=1, output_tokens=1, cost_usd=0.25)
    with meter.track("café"):
        meter.record(model="gpt-4o", input_tokens=1, output_tokens=1, cost_usd=0.25)
    rep = meter.report()
    cases = (("utf-8", ["caf\\udce9", "café"]), ("ascii", ["caf\\udce9", "caf\\xe9"]))
    for encoding, shown in cases:
        buf = io.BytesIO()
        out = io.TextIOWrapper(buf, encoding=encoding)
        rep.print(file=out)
        out.flush()
        text = buf.getvalue().decode(encoding)
        assert [line.split()[0] for line in text.splitlines()[4:6]] == shown


def test_a_width_past_10000_is_a_value_error() -> None:
    """format(width=10_001) or 10**20 raises ValueError naming width; 10,000 is drawn."""
    rep = tm.Report.from_records([])
    for width in (10_001, 10**20):
        with pytest.raises(ValueError, match=r"^width must be an integer from 64 to 10,000, got "):
            rep.format(width=width)
    assert max(len(line) for line in rep.format(width=10_000).splitlines()) == 10_000
