"""`tokenmeter report`: a saved run as a text table, markdown, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tokenmeter._acc import ACC_SIZE, add_acc
from tokenmeter._format import MIN_WIDTH, money
from tokenmeter._usage import Usage, usage_from_acc, usage_to_acc

if TYPE_CHECKING:
    from tokenmeter._report import Report, ReportNode

DIMENSIONS = ("model", "provider", "module", "operation")
FORMATS = ("text", "markdown", "json", "csv")
#: The usage columns of CSV output, in order.
CSV_FIELDS = (
    "calls",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "unpriced_calls",
    "failed_calls",
    "estimated_calls",
)

_MD_SPECIAL = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "|": "\\|",
        "\\": "\\\\",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "#": "\\#",
        "\n": " ",
        "\r": " ",
    }
)


def md(text: str) -> str:
    """``text`` as literal markdown table cell content: no markup or HTML from it survives."""
    return text.translate(_MD_SPECIAL)


def label(node: ReportNode) -> str:
    """A node's path as ``a/b/c``; ``(total)`` for the root."""
    return "/".join(node.path) or "(total)"


def prune(report: Report, depth: int) -> Report:
    """A copy of ``report`` with scopes deeper than ``depth`` folded into their ancestor.

    A folded scope's usage and breakdown move onto the ancestor at ``depth``, so
    the total and every breakdown stay the same; only the tree is shorter.
    """
    from tokenmeter._report import Report, ReportNode

    if depth < 0:
        raise ValueError(f"--depth must be 0 or more, got {depth}")

    def fold(node: ReportNode) -> dict[Any, list[int]]:
        out: dict[Any, list[int]] = {}
        for n in node.walk():
            for k, u in n.breakdown.items():
                add_acc(out.setdefault(k, [0] * ACC_SIZE), usage_to_acc(u))
        return out

    def cut(node: ReportNode, level: int) -> ReportNode:
        if level < depth:
            kids = {k: cut(c, level + 1) for k, c in node.children.items()}
            return ReportNode(
                node.name, node.path, node.entries, node.self_usage, node.usage, kids,
                node.breakdown,
            )  # fmt: skip
        folded = {k: usage_from_acc(v) for k, v in fold(node).items()}
        return ReportNode(node.name, node.path, node.entries, node.usage, node.usage, {}, folded)

    return Report(cut(report.root, 0), report.meta, report.records, report.records_dropped)


def breakdown(report: Report, by: str) -> dict[str, Usage]:
    """``report.by_model()`` and friends, by dimension name."""
    if by not in DIMENSIONS:
        raise ValueError(f"--by must be one of {', '.join(DIMENSIONS)}, got {by!r}")
    result: dict[str, Usage] = getattr(report, f"by_{by}")()
    return result


def _share(u: Usage, total: Usage) -> str:
    if total.cost_usd > 0:
        return f"{100 * u.cost_usd / total.cost_usd:.1f}%"
    if total.total_tokens > 0:
        return f"{100 * u.total_tokens / total.total_tokens:.1f}%"
    return "-"


def _cost(u: Usage, width: int = 12) -> str:
    return money(u.cost_usd, width) + ("*" if u.unpriced_calls else "")


def text_breakdown(report: Report, by: str, width: int) -> str:
    """A table of usage per value of dimension ``by``, costliest first."""
    rows = breakdown(report, by)
    total = report.total
    num_w = 8 + 10 + 13 + 7
    name_w = max(width - num_w, 12)
    head = by.ljust(name_w) + "calls".rjust(8) + "tokens".rjust(10) + "cost".rjust(13)
    head += "share".rjust(7)
    lines = [head, "-" * len(head)]
    for key, u in rows.items():
        name = key if len(key) <= name_w - 1 else key[: name_w - 2] + "…"
        lines.append(
            name.ljust(name_w)
            + f"{u.calls:,}".rjust(8)
            + f"{u.total_tokens:,}".rjust(10)
            + _cost(u).rjust(13)
            + _share(u, total).rjust(7)
        )
    if total.unpriced_calls:
        lines.append("* includes calls with no known price: cost unknown, not $0")
    return "\n".join(lines)


def markdown_tree(report: Report) -> str:
    """The tree as a markdown table: one row per scope, inclusive usage."""
    total = report.total
    lines = [
        "| scope | entries | calls | tokens | cost | share |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for node in report.walk():
        u = node.usage
        lines.append(
            f"| {md(label(node))} | {node.entries:,} | {u.calls:,} | {u.total_tokens:,} "
            f"| {md(_cost(u))} | {_share(u, total)} |"
        )
    return "\n".join(lines) + _md_footnote(total)


def markdown_breakdown(report: Report, by: str) -> str:
    """A breakdown by ``by`` as a markdown table."""
    total = report.total
    lines = [f"| {by} | calls | tokens | cost | share |", "| --- | ---: | ---: | ---: | ---: |"]
    for key, u in breakdown(report, by).items():
        lines.append(
            f"| {md(key)} | {u.calls:,} | {u.total_tokens:,} | {md(_cost(u))} "
            f"| {_share(u, total)} |"
        )
    return "\n".join(lines) + _md_footnote(total)


def _md_footnote(total: Usage) -> str:
    if not total.unpriced_calls:
        return ""
    return (
        f"\n\n\\* {total.unpriced_calls:,} calls have no known price: "
        "the cost shown is a lower bound."
    )


def _usage_cells(u: Usage) -> list[Any]:
    d = u.to_dict()
    return [d[f] for f in CSV_FIELDS]


def _cell(text: str) -> str:
    """A name as a CSV cell: one a spreadsheet would run as a formula gets a leading ``'``."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_tree(report: Report) -> str:
    """One CSV row per scope: path, depth, entries, inclusive usage, own cost and calls."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["path", "depth", "entries", *CSV_FIELDS, "own_calls", "own_cost_usd"])
    for node in report.walk():
        w.writerow(
            [
                _cell("/".join(node.path)),
                len(node.path),
                node.entries,
                *_usage_cells(node.usage),
                node.self_usage.calls,
                node.self_usage.cost_usd,
            ]
        )
    return out.getvalue()


def csv_breakdown(report: Report, by: str) -> str:
    """One CSV row per value of dimension ``by``."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([by, *CSV_FIELDS])
    for key, u in breakdown(report, by).items():
        w.writerow([_cell(key), *_usage_cells(u)])
    return out.getvalue()


def json_breakdown(report: Report, by: str) -> str:
    """A breakdown by ``by`` as JSON: ``{"by": ..., "total": ..., "rows": {value: usage}}``."""
    rows: Mapping[str, Usage] = breakdown(report, by)
    data = {
        "by": by,
        "total": report.total.to_dict(),
        "rows": {k: u.to_dict() for k, u in rows.items()},
    }
    return json.dumps(data, indent=2)


def render(report: Report, fmt: str, by: str | None, width: int) -> str:
    """The output of ``tokenmeter report`` (without its final newline)."""
    if fmt == "json":
        if by:
            return json_breakdown(report, by)
        return report.to_json(include_records=False)
    if fmt == "csv":
        return (csv_breakdown(report, by) if by else csv_tree(report)).rstrip("\n")
    if fmt == "markdown":
        return markdown_breakdown(report, by) if by else markdown_tree(report)
    if fmt == "text":
        if by:
            return text_breakdown(report, by, width)
        return (
            report.format(detailed=False, per_entry=True, width=max(width, MIN_WIDTH))
            + "\n\n"
            + text_breakdown(report, "model", width)
        )
    raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
