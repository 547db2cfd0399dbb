"""Profile formats: a report as speedscope JSON, folded stacks, or a Chrome trace.

- **folded stacks** (``flamegraph.pl``, ``inferno-flamegraph``): one line per scope
  with usage of its own, ``a;b;c WEIGHT``; the weights sum to the report's total.
- **speedscope**: a sampled profile per weight (cost, tokens, calls), one
  "sample" per scope with usage of its own, weighted by that usage.
- **Chrome trace event format** (Perfetto, ``chrome://tracing``): each kept
  per-call record as a complete event (``"ph": "X"``) on a track of its scope,
  placed in time. It needs per-call records (``tm.Meter(keep_records=True)``,
  saved with ``include_records=True``); a report without them raises ValueError.

Cost weights are whole units of 1e-10 USD, the report's own exact accounting,
so stacks add up exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._acc import COST_SCALE, cost_to_units
from ._usage import Usage

if TYPE_CHECKING:
    from ._record import CallRecord
    from ._report import Report, ReportNode

#: The weights a profile can carry, and how each is read from a `Usage`.
WEIGHTS: dict[str, Callable[[Usage], int]] = {
    "cost": lambda u: cost_to_units(u.cost_usd),
    "tokens": lambda u: u.total_tokens,
    "calls": lambda u: u.calls,
}
#: What each weight counts, as profile names say it.
WEIGHT_UNITS = {
    "cost": f"cost (1/{COST_SCALE:,} USD)",
    "tokens": "tokens",
    "calls": "calls",
}
FORMATS = ("speedscope", "folded", "chrome-trace")
#: The frame name of calls made outside any scope.
ROOT_LABEL = "(no scope)"
SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def _check_weight(weight: str) -> Callable[[Usage], int]:
    try:
        return WEIGHTS[weight]
    except KeyError:
        raise ValueError(f"weight must be one of {sorted(WEIGHTS)}, got {weight!r}") from None


def _stacks(report: Report) -> Iterator[tuple[tuple[str, ...], ReportNode]]:
    """(stack of names below the report's top, node) for every node, depth first."""
    top = len(report.root.path)
    for node in report.walk():
        stack = node.path[top:]
        yield (stack or (ROOT_LABEL,)), node


def _folded_name(name: str) -> str:
    # ';' separates frames and a line ends the stack: neither may appear in a name.
    return name.replace(";", "_").replace("\n", " ").replace("\r", " ") or "(unnamed)"


def to_folded(report: Report, weight: str = "cost") -> str:
    """Folded stacks: ``scope;child WEIGHT`` per scope with usage of its own.

    The weights are integers (``cost`` in units of 1e-10 USD) and sum to the
    report's total. Scopes with nothing of their own have no line.
    """
    value = _check_weight(weight)
    lines = []
    for stack, node in _stacks(report):
        w = value(node.self_usage)
        if w:
            lines.append(";".join(_folded_name(s) for s in stack) + f" {w}")
    return "".join(line + "\n" for line in lines)


def to_speedscope(report: Report, name: str = "tokenmeter report") -> dict[str, Any]:
    """A speedscope file: one sampled profile per weight (cost, tokens, calls).

    Each scope with usage of its own is one sample (its stack of scope names),
    weighted by that usage. Speedscope's "left heavy" and "sandwich" views then
    show where the cost or tokens went, inclusive and own.
    """
    frames: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    rows: list[tuple[list[int], Usage]] = []
    for stack, node in _stacks(report):
        if not node.self_usage.calls:
            continue
        ids = []
        for s in stack:
            if s not in index:
                index[s] = len(frames)
                frames.append({"name": s})
            ids.append(index[s])
        rows.append((ids, node.self_usage))
    profiles = []
    for weight, value in WEIGHTS.items():
        samples = [ids for ids, u in rows if value(u)]
        weights = [value(u) for _, u in rows if value(u)]
        profiles.append(
            {
                "type": "sampled",
                "name": f"{name}: {WEIGHT_UNITS[weight]}",
                "unit": "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        )
    return {
        "$schema": SPEEDSCOPE_SCHEMA,
        "name": name,
        "exporter": "tokenmeter",
        "activeProfileIndex": 0,
        "shared": {"frames": frames},
        "profiles": profiles,
    }


def _lanes(records: list[CallRecord]) -> list[tuple[CallRecord, str, float, float]]:
    """(record, track name, start s, end s): a track per scope, lanes where calls overlap.

    Records do not say which thread or task made them; calls on one scope that
    overlap in time were concurrent, so each goes on the first lane of its scope
    that is free at its start (a lane per concurrent task, in effect).
    """
    spans = []
    for r in records:
        dur = r.duration_s if r.duration_s is not None and r.duration_s >= 0 else 0.0
        spans.append((r.timestamp - dur, r.timestamp, r))
    spans.sort(key=lambda s: (s[0], s[1]))
    free_at: dict[tuple[str, ...], list[float]] = {}
    out = []
    for start, end, r in spans:
        lanes = free_at.setdefault(r.path, [])
        for i, t in enumerate(lanes):
            if t <= start:
                lanes[i] = end
                lane = i
                break
        else:
            lanes.append(end)
            lane = len(lanes) - 1
        track = "/".join(r.path) or ROOT_LABEL
        if lane:
            track += f" #{lane + 1}"
        out.append((r, track, start, end))
    return out


def to_chrome_trace(report: Report) -> dict[str, Any]:
    """Chrome trace event format: one complete event per kept call record.

    Raises ValueError when the report has no per-call records (a meter without
    ``keep_records``, or a report saved without ``include_records=True``).
    """
    records = list(report.records)
    if not records:
        kept = report.meta.get("records_kept")
        why = (
            "the run kept none: use tm.Meter(keep_records=True)"
            if kept is False
            else "save it with include_records=True from a meter with keep_records=True"
        )
        raise ValueError(f"a Chrome trace needs per-call records and this report has none ({why})")
    placed = _lanes(records)
    t0 = min(start for _, _, start, _ in placed)
    tids: dict[str, int] = {}
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "tokenmeter"}}
    ]
    calls = []
    for r, track, start, end in placed:
        if track not in tids:
            tids[track] = len(tids) + 1
            events.append(
                {
                    "ph": "M",
                    "name": "thread_name",
                    "pid": 1,
                    "tid": tids[track],
                    "args": {"name": track},
                }
            )
        calls.append(
            {
                "ph": "X",
                "name": r.model,
                "cat": r.kind,
                "pid": 1,
                "tid": tids[track],
                "ts": round((start - t0) * 1e6, 3),
                "dur": round((end - start) * 1e6, 3),
                "args": {
                    "scope": "/".join(r.path),
                    "provider": r.provider,
                    "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens,
                    "cache_read_tokens": r.cache_read_tokens,
                    "reasoning_tokens": r.reasoning_tokens,
                    "cost_usd": r.cost_usd,
                    "failed": r.failed,
                    "estimated": r.estimated,
                    "module": r.module,
                    "operation": r.operation,
                    "call_id": r.call_id,
                },
            }
        )
    return {"traceEvents": events + calls, "displayTimeUnit": "ms"}


def export_text(report: Report, fmt: str, weight: str = "cost") -> str:
    """The report in profile format ``fmt`` (one of `FORMATS`), as the text of a file."""
    if fmt == "folded":
        return to_folded(report, weight)
    if fmt == "speedscope":
        return json.dumps(to_speedscope(report), separators=(",", ":"))
    if fmt == "chrome-trace":
        return json.dumps(to_chrome_trace(report), separators=(",", ":"), default=str)
    raise ValueError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
