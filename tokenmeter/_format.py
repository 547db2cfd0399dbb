"""The report as text: a tree table that fits an 80-column terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._usage import Usage

if TYPE_CHECKING:
    from ._report import Report, ReportNode

NAME_W = 22
#: (header, width) of the number columns after the scope name.
COLUMNS = (
    ("calls", 5),
    ("input", 8),
    ("cached", 7),
    ("output", 7),
    ("reason", 6),
    ("cost", 10),
    ("share", 6),
)


def _n(value: int, width: int) -> str:
    """An integer with thousands separators, shortened to k/M/G when it would not fit."""
    text = f"{value:,}"
    if len(text) <= width:
        return text
    for div, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")):
        short = f"{value / div:.1f}{suffix}"
        if len(short) <= width:
            return short
    return text


def _cost(u: Usage) -> str:
    text = f"${u.cost_usd:.6f}" if u.cost_usd < 100 else f"${u.cost_usd:,.2f}"
    # A star: some calls here have no known price, so the true cost is higher.
    return text + ("*" if u.unpriced_calls else " ")


def _share(u: Usage, total: Usage) -> str:
    if total.cost_usd > 0:
        return f"{100 * u.cost_usd / total.cost_usd:.1f}%"
    if total.total_tokens > 0:
        return f"{100 * u.total_tokens / total.total_tokens:.1f}%"
    return "-"


def _name(label: str, depth: int) -> str:
    text = "  " * depth + label
    if len(text) > NAME_W:
        text = text[: NAME_W - 1] + "…"
    return text.ljust(NAME_W)


def _row(label: str, depth: int, u: Usage, total: Usage) -> str:
    cells = (
        _n(u.calls, 5),
        _n(u.input_tokens, 8),
        _n(u.cache_read_tokens, 7),
        _n(u.output_tokens, 7),
        _n(u.reasoning_tokens, 6),
        _cost(u),
        _share(u, total),
    )
    return _name(label, depth) + "".join(
        " " + c.rjust(w) for c, (_, w) in zip(cells, COLUMNS)
    )


def _header() -> str:
    return "scope".ljust(NAME_W) + "".join(" " + h.rjust(w) for h, w in COLUMNS)


def format_report(report: Report, detailed: bool) -> str:
    """Render ``report`` as the tree table."""
    total = report.total
    lines: list[str] = []
    head = (
        f"tokenmeter report: {total.calls:,} calls, {total.total_tokens:,} tokens, "
        f"${total.cost_usd:.6f}"
    )
    extras = []
    if total.unpriced_calls:
        extras.append(f"{total.unpriced_calls:,} unpriced")
    if total.failed_calls:
        extras.append(f"{total.failed_calls:,} failed")
    if total.estimated_calls:
        extras.append(f"{total.estimated_calls:,} estimated")
    if extras:
        head += " (" + ", ".join(extras) + ")"
    lines.append(head)
    lines.append(_header())
    lines.append("-" * len(_header()))
    root = report.root
    top_label = "/".join(root.path) if root.path else "(total)"
    lines.append(_row(top_label, 0, root.usage, total))
    _own_and_models(lines, root, 0, total, detailed)
    for child in root.children.values():
        _walk(lines, child, 1, total, detailed)
    if total.unpriced_calls:
        lines.append(
            "* includes calls with no known price: cost unknown, not $0 (see unpriced_calls)"
        )
    per_entry = [n for n in root.walk() if n.entries > 1]
    if per_entry:
        lines.append("")
        lines.append("per entry (inclusive cost / entries):")
        for n in per_entry:
            label = "/".join(n.path) or "(total)"
            cpe = n.cost_per_entry or 0.0
            tpe = n.tokens_per_entry or 0.0
            scale = 1000 if n.entries < 1000 else n.entries * 10
            lines.append(
                f"  {label} x{n.entries:,}: ${cpe:.6f}/entry, {tpe:,.0f} tokens/entry; "
                f"{scale:,} would cost about ${cpe * scale:,.4f}"
            )
    return "\n".join(lines)


def _walk(lines: list[str], node: ReportNode, depth: int, total: Usage, detailed: bool) -> None:
    label = node.name if node.entries <= 1 else f"{node.name} x{node.entries:,}"
    lines.append(_row(label, depth, node.usage, total))
    _own_and_models(lines, node, depth, total, detailed)
    for child in node.children.values():
        _walk(lines, child, depth + 1, total, detailed)


def _own_and_models(
    lines: list[str], node: ReportNode, depth: int, total: Usage, detailed: bool
) -> None:
    if node.children and node.self_usage.calls:
        lines.append(_row("· own", depth + 1, node.self_usage, total))
    if detailed:
        for (model, provider, _module, _op), u in _models(node).items():
            label = f"~ {model}" + (f" ({provider})" if provider else "")
            lines.append(_row(label, depth + 2, u, total))


def _models(node: ReportNode) -> dict[tuple[str, str | None, None, None], Usage]:
    out: dict[tuple[str, str | None, None, None], Usage] = {}
    for (model, provider, _m, _o), u in node.breakdown.items():
        key = (model, provider, None, None)
        out[key] = out[key] + u if key in out else u
    return out
