"""The report as text: a tree table (80 columns unless asked wider) and breakdown tables."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, Protocol

from ._usage import Usage


def print_text(text: str, file: IO[str]) -> None:
    """``print(text, file=file)``; what ``file`` cannot encode is written as backslash escapes.

    A name made from undecodable bytes (``os.fsdecode`` gives ``"caf\\udce9"``), or
    any name on a terminal of a narrower encoding, then shows as ``caf\\udce9``
    instead of raising UnicodeEncodeError.
    """
    try:
        print(text, file=file)
    except UnicodeEncodeError:
        encoding = getattr(file, "encoding", None) or "utf-8"
        print(text.encode(encoding, "backslashreplace").decode(encoding), file=file)


class Node(Protocol):
    """What the table reads of a report node (`tokenmeter.ReportNode`)."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> tuple[str, ...]: ...
    @property
    def entries(self) -> int: ...
    @property
    def usage(self) -> Usage: ...
    @property
    def self_usage(self) -> Usage: ...
    @property
    def children(self) -> Mapping[str, Node]: ...
    @property
    def breakdown(self) -> Mapping[Any, Usage]: ...
    @property
    def cost_per_entry(self) -> float | None: ...
    @property
    def tokens_per_entry(self) -> float | None: ...
    def walk(self) -> Iterator[Node]: ...


class Report(Protocol):
    """What the table reads of a report (`tokenmeter.Report`)."""

    @property
    def total(self) -> Usage: ...
    @property
    def error(self) -> str | None: ...
    @property
    def root(self) -> Node: ...
    @property
    def meta(self) -> Mapping[str, Any]: ...
    def by_model(self) -> dict[str, Usage]: ...
    def by_provider(self) -> dict[str, Usage]: ...
    def by_module(self) -> dict[str, Usage]: ...
    def by_operation(self) -> dict[str, Usage]: ...


#: The default width of the table, and of every line of the report.
WIDTH = 80
#: The narrowest table: a name column of 8 characters.
MIN_WIDTH = 64
#: The widest table drawn (a wider one is a mistake, and would take memory for nothing).
MAX_WIDTH = 10_000
#: Width of the name column at the default width (the number columns take the rest).
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
#: The breakdowns `by` may name, in the order they print.
DIMENSIONS = ("model", "provider", "module", "operation")


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


def _name(label: str, depth: int, suffix: str, name_w: int) -> str:
    """The name cell: indented label, shortened with '…' to fit; ``suffix`` is always kept."""
    indent = _indent(depth)
    room = name_w - len(indent) - len(suffix)
    if len(label) > room:
        label = label[: max(room - 1, 1)] + "…"
    text = indent + label + suffix
    if len(text) > name_w:
        text = text[: name_w - 1] + "…"
    return text.ljust(name_w)


def _row(label: str, depth: int, u: Usage, total: Usage, name_w: int, suffix: str = "") -> str:
    cells = (
        _n(u.calls, 5),
        _n(u.input_tokens, 8),
        _n(u.cache_read_tokens, 7),
        _n(u.output_tokens, 7),
        _n(u.reasoning_tokens, 6),
        _cost(u),
        _share(u, total),
    )
    return _name(label, depth, suffix, name_w) + "".join(
        " " + c.rjust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)
    )


def _header(first: str, name_w: int) -> str:
    return first.ljust(name_w) + "".join(" " + h.rjust(w) for h, w in COLUMNS)


def check_options(width: object, by: object) -> tuple[int, tuple[str, ...]]:
    """Validate ``width`` and ``by`` of `Report.format`; ValueError naming the bad one."""
    if width is None:
        width = WIDTH
    if isinstance(width, bool) or not isinstance(width, int) or not MIN_WIDTH <= width <= MAX_WIDTH:
        raise ValueError(
            f"width must be an integer from {MIN_WIDTH} to {MAX_WIDTH:,}, got {width!r:.40}"
        )
    if by is None:
        dims: tuple[str, ...] = ()
    elif by is True or by == "all":
        dims = DIMENSIONS
    elif isinstance(by, str):
        dims = (by,)
    elif isinstance(by, Iterable):
        dims = tuple(by)
    else:
        dims = (repr(by),)
    for d in dims:
        if d not in DIMENSIONS:
            raise ValueError(
                f"by must name breakdowns among {', '.join(DIMENSIONS)} (or be 'all'), got {d!r}"
            )
    return width, tuple(sorted(set(dims), key=DIMENSIONS.index))


def format_report(
    report: Report,
    detailed: bool = False,
    *,
    width: int | None = None,
    by: str | Sequence[str] | bool | None = None,
    per_entry: bool = False,
) -> str:
    """Render ``report``: the tree table, then the breakdowns ``by`` names, then per entry."""
    width, dims = check_options(width, by)
    name_w = width - (WIDTH - NAME_W)
    total = report.total
    lines: list[str] = []
    if report.error is not None:
        return "\n".join(textwrap.wrap(f"tokenmeter report unavailable: {report.error}", width))
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
    lines.extend(textwrap.wrap(head, width, subsequent_indent="  "))
    prices = report.meta.get("prices")
    if isinstance(prices, dict) and prices.get("source") == "mixed":
        differ = ", ".join(str(d) for d in prices.get("differences", ())) or "unknown"
        lines.extend(
            textwrap.wrap(
                f"! merged from reports priced differently ({differ}): see meta['prices']",
                width,
                subsequent_indent="  ",
            )
        )
    unattributed = report.meta.get("unattributed")
    if isinstance(unattributed, dict) and unattributed:
        names = ", ".join(sorted(str(k) for k in unattributed))
        lines.extend(
            textwrap.wrap(
                f"! LiteLLM calls through {names} were not attributed (instrumentation failed;"
                " see tm.instrumented()): they are missing from this report",
                width,
                subsequent_indent="  ",
            )
        )
    lines.append(_header("scope", name_w))
    lines.append("-" * width)
    root = report.root
    top_label = "/".join(root.path) if root.path else "(total)"
    lines.append(_row(top_label, 0, root.usage, total, name_w))
    _own_and_models(lines, root, 0, total, detailed, name_w)
    _walk(lines, root, total, detailed, name_w)
    if total.unpriced_calls:
        lines.append(
            "* includes calls with no known price: cost unknown, not $0 (see unpriced_calls)"
        )
    for dim in dims:
        rows: dict[str, Usage] = getattr(report, f"by_{dim}")()
        lines.append("")
        lines.append(_header(f"by {dim}", name_w))
        lines.append("-" * width)
        lines.extend(_row(label, 0, u, total, name_w) for label, u in rows.items())
    if per_entry:
        _per_entry(lines, root, width)
    return "\n".join(lines)


def _per_entry(lines: list[str], root: Node, width: int) -> None:
    """The per-entry section: cost and tokens per entry of each scope entered more than once."""
    nodes = [n for n in root.walk() if n.entries > 1]
    lines.append("")
    if not nodes:
        lines.append("per entry: no scope was entered more than once")
        return
    label_w = width - 32
    lines.append("per entry (inclusive cost / entries):")
    for n in nodes:
        label = "/".join(n.path) or "(total)"
        if len(label) > label_w:
            label = "…" + label[-(label_w - 1) :]
        cpe = n.cost_per_entry or 0.0
        tpe = n.tokens_per_entry or 0.0
        scale = 1000 if n.entries < 1000 else n.entries * 10
        first = f"{label} x{n.entries:,}: {money(cpe, 24)} and {tpe:,.0f} tokens per entry"
        lines.extend(textwrap.wrap(first, width, initial_indent="  ", subsequent_indent="    "))
        unpriced = n.usage.unpriced_calls
        more = f" or more ({unpriced:,} unpriced calls)" if unpriced else ""
        lines.append(f"    {scale:,} would cost about {money(cpe * scale, 24)}{more}")


def _walk(lines: list[str], root: Node, total: Usage, detailed: bool, name_w: int) -> None:
    """The rows of every node below ``root``, depth first (no recursion: any depth)."""
    stack = [(c, 1) for c in reversed(list(root.children.values()))]
    while stack:
        node, depth = stack.pop()
        suffix = "" if node.entries <= 1 else f" x{node.entries:,}"
        lines.append(_row(node.name, depth, node.usage, total, name_w, suffix))
        _own_and_models(lines, node, depth, total, detailed, name_w)
        stack.extend((c, depth + 1) for c in reversed(list(node.children.values())))


def _own_and_models(
    lines: list[str], node: Node, depth: int, total: Usage, detailed: bool, name_w: int
) -> None:
    own_row = bool(node.children and node.self_usage.calls)
    if own_row:
        lines.append(_row("· own", depth + 1, node.self_usage, total, name_w))
    if detailed:
        models = _models(node)
        names = [model for model, _, _, _ in models]
        for (model, provider, _module, _op), u in models.items():
            # The provider only where it tells apart two lines of the same model.
            shown = f"{model} ({provider})" if provider and names.count(model) > 1 else model
            lines.append(_row("~ " + shown, depth + 1 + own_row, u, total, name_w))


def _models(node: Node) -> dict[tuple[str, str | None, None, None], Usage]:
    out: dict[tuple[str, str | None, None, None], Usage] = {}
    for (model, provider, _m, _o), u in node.breakdown.items():
        key = (model, provider, None, None)
        out[key] = out[key] + u if key in out else u
    return out
