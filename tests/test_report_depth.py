"""Reports at any depth and size, and what a report that could not be taken looks like."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import pytest

import tokenmeter as tm
from tokenmeter import _errors, _report

DEPTH = 3_000


def _deep(meter: tm.Meter, depth: int = DEPTH) -> None:
    """A chain of ``depth`` nested scopes with one call at the bottom and one at the top."""
    meter.record(model="m", input_tokens=1, output_tokens=1, cost_usd=0.25)
    with contextlib.ExitStack() as stack:
        for i in range(depth):
            stack.enter_context(meter.track(f"s{i}"))
        meter.record(model="m", input_tokens=10, output_tokens=5, cost_usd=0.5)


def test_report_of_a_3000_deep_tree(tmp_path: Path) -> None:
    """A 3,000-deep chain: report, text, to_dict, save and load keep every node's numbers."""
    meter = tm.Meter()
    _deep(meter)
    rep = meter.report()
    assert rep.total == tm.Usage(calls=2, input_tokens=11, output_tokens=6, cost_usd=0.75)
    assert len(list(rep.walk())) == DEPTH + 1
    bottom = rep.find(f"s{DEPTH - 1}")
    assert (len(bottom.path), bottom.usage.input_tokens, bottom.entries) == (DEPTH, 10, 1)
    text = str(rep)
    assert len(text.splitlines()) == 3 + DEPTH + 2  # header lines, top, nodes, '· own' of top
    assert max(len(line) for line in text.splitlines()) <= 80
    path = tmp_path / "deep.json"
    rep.save(path)
    back = tm.Report.load(path)
    assert [(n.path, n.usage) for n in back.walk()] == [(n.path, n.usage) for n in rep.walk()]
    assert back.node(*(f"s{i}" for i in range(DEPTH))).self_usage.calls == 1
    nested = rep.root.to_dict()  # the nested form, built without recursion
    assert nested["children"][0]["name"] == "s0"
    assert tm.ReportNode.from_dict(nested).usage == rep.total
    assert rep.merge(back).total.calls == 4


@pytest.mark.parametrize(
    "jobs", [100, pytest.param(1_000, marks=pytest.mark.slow)], ids=["10000", "100000"]
)
def test_report_of_a_wide_tree(jobs: int) -> None:
    """A tree of jobs x 100 scopes (each job with 99 steps) is reported whole, with exact sums."""
    meter = tm.Meter()
    for i in range(jobs):
        with meter.track(f"job{i}"):
            for j in range(99):
                with meter.track(f"step{j}"):
                    if j == 0:
                        meter.record(model="m", input_tokens=i, output_tokens=1, cost_usd=0.001)
    rep = meter.report()
    assert len(list(rep.walk())) == 1 + jobs * 100
    assert rep.total.calls == jobs
    assert rep.total.input_tokens == sum(range(jobs))
    assert rep.total.cost_usd == jobs / 1_000
    assert rep.find(f"job{jobs - 1}/step0").usage.input_tokens == jobs - 1
    back = tm.Report.from_dict(json.loads(rep.to_json(indent=None)))
    assert back.total == rep.total
    assert len(list(back.walk())) == 1 + jobs * 100


def test_an_internal_error_gives_a_report_that_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A failing snapshot: the error is logged; the report says it is unavailable; save refuses."""
    monkeypatch.setattr(_errors, "RAISE_INTERNAL_ERRORS", False)

    def broken(*args: object) -> object:
        raise RuntimeError("snapshot broke")

    monkeypatch.setattr(_report, "snap_locked", broken)
    meter = tm.Meter()
    with meter.track("job"):
        meter.record(model="m", input_tokens=1, output_tokens=1, cost_usd=0.5)
        with caplog.at_level(logging.ERROR, logger="tokenmeter"):
            rep = meter.report()
    assert "tokenmeter internal error in report" in caplog.text
    assert rep.error == (
        "tokenmeter could not take this report (RuntimeError: snapshot broke); see its log"
    )
    assert str(rep) == (
        "tokenmeter report unavailable: tokenmeter could not take this report\n"
        "(RuntimeError: snapshot broke); see its log"
    )
    target = tmp_path / "usage.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="not saving a report with no numbers"):
        rep.save(target)
    assert target.read_text() == "old"
    assert rep.to_dict()["error"] == rep.error  # exported data carries it too
    ok = tm.Report.empty()
    assert ok.merge(rep).error == rep.error  # a merge with it is no true picture either
    assert tm.Report.from_dict(rep.to_dict()).error == rep.error


def test_a_report_that_fails_past_the_snapshot_says_so_instead_of_being_empty(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Taking the report fails outside the snapshot: the error is logged; the report says so."""
    monkeypatch.setattr(_errors, "RAISE_INTERNAL_ERRORS", False)

    def broken(meter: object, top: object) -> object:
        raise RuntimeError("report broke")

    monkeypatch.setattr(_report, "snapshot", broken)
    meter = tm.Meter()
    with meter.track("job") as job:
        meter.record(model="m", input_tokens=1, output_tokens=1, cost_usd=0.5)
    with caplog.at_level(logging.ERROR, logger="tokenmeter"):
        whole, sub = meter.report(), job.report()
    assert caplog.text.count("tokenmeter internal error in report") == 2
    reason = "tokenmeter could not take this report (RuntimeError: report broke); see its log"
    assert (whole.error, sub.error) == (reason, reason)
    assert (whole.root.path, sub.root.path) == ((), ("job",))
    assert sub.total.calls == 0  # no numbers, and it says so: not a plausible empty report


def test_deep_version_1_file_is_refused_clearly(tmp_path: Path) -> None:
    """A version-1 file nested deeper than JSON readers go: ValueError naming the file."""
    path = tmp_path / "deep.json"
    tree = '{"name": "x", "children": [' * 50_000 + "{}" + "]}" * 50_000
    path.write_text('{"schema": "tokenmeter.report", "schema_version": 1, "tree": ' + tree + "}")
    with pytest.raises(ValueError, match=r"deep\.json: nested too deeply to be a report"):
        tm.Report.load(path)
