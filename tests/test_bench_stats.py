"""The benchmark figure: the 10th percentile of a row's rounds, and the page built on it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType]]:
    monkeypatch.syspath_prepend(str(BENCH))
    harness = importlib.import_module("harness")
    render = importlib.import_module("render")
    yield harness, render
    for name in ("render", "harness"):
        sys.modules.pop(name, None)


def _results(cur: dict[str, list[float]], base: dict[str, list[float]]) -> dict[str, Any]:
    def version(name: str, rows: dict[str, list[float]], harness: ModuleType) -> dict[str, Any]:
        return {
            "name": name,
            "commit": name,
            "results": {
                k: {
                    "status": "ok",
                    "cpu_us": harness.summary(s),
                    "wall_us": harness.summary(s),
                    "cpu_samples_us": s,
                }
                for k, s in rows.items()
            },
            "probes": {},
        }

    harness = importlib.import_module("harness")
    keys = sorted(cur)
    return {
        "cases": [{"key": k, "label": k, "module": "m"} for k in keys],
        "versions": [version("after", cur, harness), version("before", base, harness)],
    }


def test_low_is_the_inclusive_10th_percentile(bench: Any) -> None:
    """1..10 gives 1.9 (a tenth of the way from the 1st to the 10th value); one sample, itself."""
    harness, _ = bench
    assert harness.low([float(x) for x in range(10, 0, -1)]) == pytest.approx(1.9)
    assert harness.low([0.25]) == 0.25
    assert harness.summary([float(x) for x in range(1, 11)])["q10"] == pytest.approx(1.9)


def test_a_row_is_judged_by_its_fast_rounds_not_the_median(bench: Any) -> None:
    """Identical code in two speeds: medians 0.19 vs 0.11 (+73%), the figure 0.11 vs 0.11."""
    _, render = bench
    fast, slow = [0.11] * 5, [0.19] * 6
    res = _results(
        {"floor_contextvar": fast + slow, "lock": [0.15] * 11},
        {"floor_contextvar": fast + fast + [0.19], "lock": [0.15] * 11},
    )
    cur, base = render._versions(res)
    assert cur.median("floor_contextvar") == pytest.approx(0.19)
    assert base.median("floor_contextvar") == pytest.approx(0.11)
    assert cur.cpu("floor_contextvar") == pytest.approx(0.11)
    assert base.cpu("floor_contextvar") == pytest.approx(0.11)
    assert render.noise(res).splitlines()[2:] == [
        "| floor_contextvar | +0% | +73% |",
        "| lock | +0% | +0% |",
    ]


def test_a_results_file_without_samples_falls_back_to_the_median(bench: Any) -> None:
    """An older results file kept only summaries: its rows read as their medians."""
    _, render = bench
    res = _results({"lock": [0.1, 0.2, 0.3]}, {"lock": [0.1, 0.2, 0.3]})
    for v in res["versions"]:
        del v["results"]["lock"]["cpu_samples_us"]
    cur, _ = render._versions(res)
    assert cur.cpu("lock") == pytest.approx(0.2)
