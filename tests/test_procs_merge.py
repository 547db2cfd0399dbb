"""Reports saved by separate processes merge into the report of the same work done in one."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from procs_jobs import job

import tokenmeter as tm

FORK = multiprocessing.get_context("fork")


def _nodes(rep: tm.Report) -> dict[tuple[str, ...], Any]:
    """Every node by path: entries, own and inclusive usage, breakdown."""
    return {n.path: (n.entries, n.self_usage, n.usage, dict(n.breakdown)) for n in rep.walk()}


def _work(meter: tm.Meter, indices: list[int]) -> None:
    """One part of the work: a 'batch' scope, an 'item' scope per index, `job` in it."""
    with meter.track("batch"):
        for i in indices:
            with meter.track("item"):
                job(i)


def _part(indices: list[int], path: str) -> None:
    """In a child process: do one part of the work and save its report with records."""
    meter = tm.Meter(keep_records=True)
    _work(meter, indices)
    meter.report().save(path, include_records=True)


def test_saved_reports_of_processes_merge_to_the_one_process_report(tmp_path: Path) -> None:
    """Two processes' saved reports, merged, equal one process doing all the work (records too)."""
    paths = [str(tmp_path / f"part{k}.json") for k in range(2)]
    children = [
        FORK.Process(target=_part, args=(list(range(k, 20, 2)), paths[k])) for k in range(2)
    ]
    for c in children:
        c.start()
    for c in children:
        c.join()
        assert c.exitcode == 0
    merged = tm.Report.merge(*(tm.Report.load(p) for p in paths))

    alone = tm.Meter(keep_records=True)
    for k in range(2):
        _work(alone, list(range(k, 20, 2)))
    single = alone.report()

    assert _nodes(merged) == _nodes(single)
    assert merged.total.calls == 40
    assert merged.by_model() == single.by_model()
    assert sorted(r.to_dict()["path"] for r in merged.records) == sorted(
        r.to_dict()["path"] for r in single.records
    )
    assert len(merged.records) == 40


def test_pool_report_equals_merged_saved_reports(tmp_path: Path) -> None:
    """The same work through a process pool (usage carried back) gives the same nodes."""
    with tm.track("batch"), ProcessPoolExecutor(2, mp_context=FORK) as pool, tm.track("item"):
        list(pool.map(job, range(20)))
    pooled = tm.report()
    alone = tm.Meter()
    with alone.track("batch"), alone.track("item"):
        for i in range(20):
            job(i)
    assert _nodes(pooled) == _nodes(alone.report())
    assert pooled.node("batch", "item", "step").entries == 20
