"""`tokenmeter diff`: what changed between two saved runs, per scope and per model."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from tokenmeter._acc import cost_to_units, units_to_cost
from tokenmeter._format import money
from tokenmeter._usage import Usage

from ._tables import md

if TYPE_CHECKING:
    from tokenmeter._report import Report

#: How many rows the markdown output shows per table (a pull-request comment stays short).
MARKDOWN_ROWS = 25


@attrs.frozen
class Threshold:
    """``--fail-over``: a growth of the cost past ``percent`` % or ``usd`` dollars fails."""

    percent: float | None = None
    usd: float | None = None

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """``10%`` (relative growth) or ``0.05`` / ``$0.05`` (absolute growth in USD)."""
        s = text.strip()
        m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*%", s)
        if m:
            return cls(percent=float(m.group(1)))
        m = re.fullmatch(r"\$?\s*(\d+(?:\.\d*)?|\.\d+)(?:\s*(?:usd|USD))?", s)
        if m:
            return cls(usd=float(m.group(1)))
        raise ValueError(
            f"--fail-over must be a percentage like 10% or a dollar amount like 0.05, got {text!r}"
        )

    def describe(self) -> str:
        """The threshold as the user wrote it, normalised."""
        return f"{self.percent:g}%" if self.percent is not None else money(self.usd or 0.0, 24)

    def exceeded(self, before: Usage, after: Usage) -> bool:
        """Whether ``after`` costs more than ``before`` by more than the threshold."""
        growth = cost_to_units(after.cost_usd) - cost_to_units(before.cost_usd)
        if self.usd is not None:
            return growth > cost_to_units(self.usd)
        if growth <= 0:
            return False
        if before.cost_usd <= 0:
            return True  # from nothing to something: an infinite relative growth
        return 100 * growth / cost_to_units(before.cost_usd) > (self.percent or 0.0)


@attrs.frozen
class Row:
    """One scope (or model) in both runs: inclusive usage before and after."""

    key: str
    before: Usage
    after: Usage
    status: str  # "", "new" or "gone"

    @property
    def cost_change(self) -> float:
        """Cost after minus cost before, in USD (exact to 1e-10)."""
        return units_to_cost(
            cost_to_units(self.after.cost_usd) - cost_to_units(self.before.cost_usd)
        )

    @property
    def tokens_change(self) -> int:
        """Tokens after minus tokens before."""
        return self.after.total_tokens - self.before.total_tokens

    @property
    def calls_change(self) -> int:
        """Calls after minus calls before."""
        return self.after.calls - self.before.calls

    @property
    def changed(self) -> bool:
        """Whether anything counted differs."""
        return self.before != self.after or bool(self.status)


def _rows(pairs: Iterable[tuple[str, Usage | None, Usage | None]]) -> list[Row]:
    rows = []
    for key, b, a in pairs:
        status = "new" if b is None else "gone" if a is None else ""
        rows.append(Row(key, b or Usage(), a or Usage(), status))
    rows.sort(key=lambda r: (-abs(r.cost_change), -abs(r.tokens_change), -abs(r.calls_change)))
    return rows


def scope_rows(base: Report, new: Report) -> list[Row]:
    """Every scope of either run, by path, costliest change first."""
    b = {"/".join(n.path) or "(total)": n.usage for n in base.walk()}
    a = {"/".join(n.path) or "(total)": n.usage for n in new.walk()}
    keys = list(dict.fromkeys([*b, *a]))
    return _rows((k, b.get(k), a.get(k)) for k in keys)


def model_rows(base: Report, new: Report) -> list[Row]:
    """Every model of either run, costliest change first."""
    b, a = base.by_model(), new.by_model()
    keys = list(dict.fromkeys([*b, *a]))
    return _rows((k, b.get(k), a.get(k)) for k in keys)


def scope_usage(report: Report, path: str) -> Usage | None:
    """Inclusive usage of the scope at ``path`` (``a/b``, as the table shows it), None if absent.

    The path is the scope's whole path, also in a report of a subtree (saved from a
    scope's ``report()``), whose top is not the meter's root.
    """
    parts = tuple(p for p in path.split("/") if p)
    top = report.root.path
    if parts[: len(top)] != top:
        return None
    node = report.root
    for p in parts[len(top) :]:
        child = node.children.get(p)
        if child is None:
            return None
        node = child
    return node.usage


def _pct(before: float, after: float) -> str:
    if before == after:
        return "0%"
    if before <= 0:
        return "new" if after > 0 else "0%"
    p = 100 * (after - before) / before
    return f"{p:+.1f}%" if math.isfinite(p) else "-"


def _signed_money(x: float) -> str:
    return ("+" if x > 0 else "-" if x < 0 else "±") + money(abs(x), 12)


def _cost(u: Usage) -> str:
    return money(u.cost_usd, 12) + ("*" if u.unpriced_calls else "")


def summary(label: str, before: Usage, after: Usage) -> str:
    """``label: $b -> $a (+$d, +p%); tokens b -> a; calls b -> a``."""
    change = units_to_cost(cost_to_units(after.cost_usd) - cost_to_units(before.cost_usd))
    return (
        f"{label}: cost {_cost(before)} -> {_cost(after)} "
        f"({_signed_money(change)}, {_pct(before.cost_usd, after.cost_usd)}); "
        f"tokens {before.total_tokens:,} -> {after.total_tokens:,}; "
        f"calls {before.calls:,} -> {after.calls:,}"
    )


def _text_table(title: str, rows: list[Row]) -> list[str]:
    marks = [len(f" ({r.status})") if r.status else 0 for r in rows]
    name_w = (
        max([len(title), *(min(len(r.key), 40) + m for r, m in zip(rows, marks, strict=True))]) + 2
    )
    head = (
        title.ljust(name_w)
        + "calls".rjust(13)
        + "tokens".rjust(21)
        + "cost before".rjust(13)
        + "cost after".rjust(13)
        + "change".rjust(13)
        + "%".rjust(8)
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        key = r.key if len(r.key) <= 40 else "…" + r.key[-39:]
        mark = f" ({r.status})" if r.status else ""
        lines.append(
            (key + mark).ljust(name_w)
            + f"{r.before.calls:,}->{r.after.calls:,}".rjust(13)
            + f"{r.before.total_tokens:,}->{r.after.total_tokens:,}".rjust(21)
            + _cost(r.before).rjust(13)
            + _cost(r.after).rjust(13)
            + _signed_money(r.cost_change).rjust(13)
            + _pct(r.before.cost_usd, r.after.cost_usd).rjust(8)
        )
    return lines


def _md_table(title: str, rows: list[Row]) -> list[str]:
    lines = [
        f"| {title} | calls | tokens | cost before | cost after | change | % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows[:MARKDOWN_ROWS]:
        mark = f" **{r.status}**" if r.status else ""
        lines.append(
            f"| {md(r.key)}{mark} | {r.before.calls:,} → {r.after.calls:,} "
            f"| {r.before.total_tokens:,} → {r.after.total_tokens:,} "
            f"| {md(_cost(r.before))} | {md(_cost(r.after))} "
            f"| {md(_signed_money(r.cost_change))} | {_pct(r.before.cost_usd, r.after.cost_usd)} |"
        )
    if len(rows) > MARKDOWN_ROWS:
        lines.append(f"\n…and {len(rows) - MARKDOWN_ROWS} more with smaller changes.")
    return lines


def render(
    base: Report,
    new: Report,
    fmt: str,
    threshold: Threshold | None,
    scope: str | None,
    verdict: bool,
) -> str:
    """The output of ``tokenmeter diff``; ``verdict`` is whether the threshold was exceeded."""
    scopes = [r for r in scope_rows(base, new) if r.changed]
    models = [r for r in model_rows(base, new) if r.changed]
    unchanged = len(scope_rows(base, new)) - len(scopes)
    lines: list[str] = []
    heading = summary("total", base.total, new.total)
    target = None
    if scope is not None:
        target = summary(
            f"scope {scope}",
            scope_usage(base, scope) or Usage(),
            scope_usage(new, scope) or Usage(),
        )
    check = ""
    if threshold is not None:
        what = f"scope {scope}" if scope is not None else "the total"
        word = "grew past" if verdict else "is within"
        check = f"{what} {word} the threshold of {threshold.describe()}"
    unpriced = base.total.unpriced_calls or new.total.unpriced_calls
    if fmt == "markdown":
        lines.append("### tokenmeter: cost change")
        lines.append("")
        lines.append(md(heading))
        if target:
            lines.append("")
            lines.append(md(target))
        if check:
            lines.append("")
            lines.append(("**FAIL**: " if verdict else "**OK**: ") + md(check))
        lines.append("")
        if scopes:
            lines.extend(_md_table("scope", scopes))
            lines.append("")
            lines.extend(_md_table("model", models))
        else:
            lines.append("No scope or model changed.")
        if unchanged:
            lines.append("")
            lines.append(f"{unchanged} scopes unchanged.")
        if unpriced:
            lines.append("")
            lines.append("\\* includes calls with no known price: the cost is a lower bound.")
        return "\n".join(lines)
    if fmt != "text":
        raise ValueError(f"--format must be text or markdown, got {fmt!r}")
    lines.append(heading)
    if target:
        lines.append(target)
    if check:
        lines.append(("FAIL: " if verdict else "OK: ") + check)
    lines.append("")
    if scopes:
        lines.extend(_text_table("scope", scopes))
        lines.append("")
        lines.extend(_text_table("model", models))
    else:
        lines.append("no scope or model changed")
    if unchanged:
        lines.append(f"({unchanged} scopes unchanged)")
    if unpriced:
        lines.append("* includes calls with no known price: the cost is a lower bound")
    return "\n".join(lines)
