"""The report as text: a tree table that fits an 80-column terminal."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from ._usage import Usage

if TYPE_CHECKING:
    from ._report import Report, ReportNode

#: Width of the whole table, and of every line of the report.
WIDTH = 80
NAME_W = 24
#: Indentation stops growing here, so deep trees keep room for names.
MAX_INDENT = 12
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
    for div, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T"), (1e15, "P")):
        if value / div < 999.5:
            for short in (f"{value / div:.1f}{suffix}", f"{value / div:.0f}{suffix}"):
                if len(short) <= width:
                    return short
    return f"{value:.1e}"


def money(cost: float, width: int = 9) -> str:
    """A dollar amount in at most ``width`` characters, as precise as fits."""
    first = f"${cost:.6f}" if cost < 100 else f"${cost:,.2f}"
    for text in (first, f"${cost:,.4f}", f"${cost:,.2f}", f"${cost:,.0f}"):
        if len(text) <= width:
            return text
    for div, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T"), (1e15, "P")):
        if cost / div < 999.95:
            short = f"${cost / div:.1f}{suffix}"
            if len(short) <= width:
                return short
    return f"${cost:.1e}"


def _cost(u: Usage) -> str:
    # A star: some calls here have no known price, so the true cost is higher.
    return money(u.cost_usd) + ("*" if u.unpriced_calls else " ")


def _share(u: Usage, total: Usage) -> str:
    if total.cost_usd > 0:
        return f"{100 * u.cost_usd / total.cost_usd:.1f}%"
    if total.total_tokens > 0:
        return f"{100 * u.total_tokens / total.total_tokens:.1f}%"
    return "-"


def _indent(depth: int) -> str:
    # Two spaces a level, then one, up to MAX_INDENT: deep names stay readable.
    return " " * min(2 * depth if depth <= 4 else 4 + depth, MAX_INDENT)


def _name(label: str, depth: int, suffix: str = "") -> str:
    """The name cell: indented label, shortened with '…' to fit; ``suffix`` is always kept."""
    indent = _indent(depth)
    room = NAME_W - len(indent) - len(suffix)
    if len(label) > room:
        label = label[: max(room - 1, 1)] + "…"
    text = indent + label + suffix
    if len(text) > NAME_W:
        text = text[: NAME_W - 1] + "…"
    return text.ljust(NAME_W)


def _row(label: str, depth: int, u: Usage, total: Usage, suffix: str = "") -> str:
    cells = (
        _n(u.calls, 5),
        _n(u.input_tokens, 8),
        _n(u.cache_read_tokens, 7),
        _n(u.output_tokens, 7),
        _n(u.reasoning_tokens, 6),
        _cost(u),
        _share(u, total),
    )
    return _name(label, depth, suffix) + "".join(
        " " + c.rjust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)
    )


def _header() -> str:
    return "scope".ljust(NAME_W) + "".join(" " + h.rjust(w) for h, w in COLUMNS)


def format_report(report: Report, detailed: bool) -> str:
    """Render ``report`` as the tree table."""
    total = report.total
    lines: list[str] = []
    head = (
        f"tokenmeter report: {total.calls:,} calls, {total.total_tokens:,} tokens, "
        f"{money(total.cost_usd, 24)}"
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
    lines.extend(textwrap.wrap(head, WIDTH, subsequent_indent="  "))
    prices = report.meta.get("prices")
    if isinstance(prices, dict) and prices.get("source") == "mixed":
        differ = ", ".join(str(d) for d in prices.get("differences", ())) or "unknown"
        lines.extend(
            textwrap.wrap(
                f"! merged from reports priced differently ({differ}): see meta['prices']",
                WIDTH,
                subsequent_indent="  ",
            )
        )
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
            if len(label) > 48:
                label = "…" + label[-47:]
            cpe = n.cost_per_entry or 0.0
            tpe = n.tokens_per_entry or 0.0
            scale = 1000 if n.entries < 1000 else n.entries * 10
            first = f"{label} x{n.entries:,}: {money(cpe, 24)} and {tpe:,.0f} tokens per entry"
            lines.extend(textwrap.wrap(first, WIDTH, initial_indent="  ", subsequent_indent="    "))
            unpriced = n.usage.unpriced_calls
            more = f" or more ({unpriced:,} unpriced calls)" if unpriced else ""
            lines.append(f"    {scale:,} would cost about {money(cpe * scale, 24)}{more}")
    return "\n".join(lines)


def _walk(lines: list[str], node: ReportNode, depth: int, total: Usage, detailed: bool) -> None:
    suffix = "" if node.entries <= 1 else f" x{node.entries:,}"
    lines.append(_row(node.name, depth, node.usage, total, suffix))
    _own_and_models(lines, node, depth, total, detailed)
    for child in node.children.values():
        _walk(lines, child, depth + 1, total, detailed)


def _own_and_models(
    lines: list[str], node: ReportNode, depth: int, total: Usage, detailed: bool
) -> None:
    own_row = bool(node.children and node.self_usage.calls)
    if own_row:
        lines.append(_row("· own", depth + 1, node.self_usage, total))
    if detailed:
        models = _models(node)
        names = [model for model, _, _, _ in models]
        for (model, provider, _module, _op), u in models.items():
            # The provider only where it tells apart two lines of the same model.
            shown = f"{model} ({provider})" if provider and names.count(model) > 1 else model
            lines.append(_row("~ " + shown, depth + 1 + own_row, u, total))


def _models(node: ReportNode) -> dict[tuple[str, str | None, None, None], Usage]:
    out: dict[tuple[str, str | None, None, None], Usage] = {}
    for (model, provider, _m, _o), u in node.breakdown.items():
        key = (model, provider, None, None)
        out[key] = out[key] + u if key in out else u
    return out
