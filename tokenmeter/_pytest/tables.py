"""The plugin's terminal tables: usage per test, and the change against a baseline."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ._core import cost_to_units
from .baselines import Baseline, change
from .results import TestUsage, by_model, sum_usage

if TYPE_CHECKING:
    from tokenmeter import Usage

#: Models listed under the per-test table (the JSON has them all).
TOP_MODELS = 5

_NUM_HEAD = ("calls", "input", "output", "cost", "unpriced")
_NUM_W = (6, 10, 10, 12, 9)
_CMP_HEAD = ("tokens", "change", "cost", "change", "calls")
_CMP_W = (22, 8, 26, 8, 12)


def fit(text: str, width: int) -> str:
    """``text`` padded to ``width``, or cut from the left (where test ids differ)."""
    if len(text) <= width:
        return text.ljust(width)
    return "…" + text[-(width - 1) :]


def name_width(names: list[str], room: int) -> int:
    """Names are shown whole up to 60 characters even if a line then overflows the terminal."""
    longest = max([len(n) for n in names] + [24])
    return min(longest, max(room, 60))


def _row(label: str, cells: Iterable[str], widths: tuple[int, ...], name_w: int) -> str:
    return fit(label, name_w) + "".join(
        " " + c.rjust(w) for c, w in zip(cells, widths, strict=True)
    )


def _cells(u: Usage) -> list[str]:
    return [
        f"{u.calls:,}",
        f"{u.input_tokens:,}",
        f"{u.output_tokens:,}",
        f"${u.cost_usd:.6f}",
        f"{u.unpriced_calls:,}",
    ]


def summary_lines(tests: Mapping[str, TestUsage], width: int) -> list[str]:
    """The per-test table (tests with calls, costliest first), the totals and the top models."""
    with_calls = [t for t in tests.values() if t.usage.calls]
    with_calls.sort(key=lambda t: (-t.usage.cost_usd, -t.usage.total_tokens, t.nodeid))
    nums = sum(_NUM_W) + len(_NUM_W)
    name_w = name_width([t.nodeid for t in with_calls], width - nums - 1)
    lines = [_row("test", _NUM_HEAD, _NUM_W, name_w)]
    for t in with_calls:
        lines.append(_row(t.nodeid, _cells(t.usage), _NUM_W, name_w))
    total = sum_usage(t.usage for t in tests.values())
    lines.append("-" * (name_w + nums))
    n_tests = len(tests)
    label = f"total: {len(with_calls)} of {n_tests} test{'s' if n_tests != 1 else ''}"
    lines.append(_row(label, _cells(total), _NUM_W, name_w))
    models = by_model(tests.values())
    if models:
        lines.append("")
        lines.append(_row("top models", _NUM_HEAD, _NUM_W, name_w))
        for model, u in list(models.items())[:TOP_MODELS]:
            lines.append(_row(model, _cells(u), _NUM_W, name_w))
        if len(models) > TOP_MODELS:
            lines.append(f"({len(models) - TOP_MODELS} more models in the JSON output)")
    if total.unpriced_calls:
        lines.append(
            f"{total.unpriced_calls:,} unpriced call(s): their model has no known price, "
            "so the cost shown is a lower bound"
        )
    return lines


def _compare_cells(base: Usage | None, now: Usage) -> list[str]:
    if base is None:
        return [f"{now.total_tokens:,}", "new", f"${now.cost_usd:.6f}", "new", f"{now.calls:,}"]
    return [
        f"{base.total_tokens:,} -> {now.total_tokens:,}",
        change(base.total_tokens, now.total_tokens),
        f"${base.cost_usd:.6f} -> ${now.cost_usd:.6f}",
        change(cost_to_units(base.cost_usd), cost_to_units(now.cost_usd)),
        f"{base.calls:,} -> {now.calls:,}",
    ]


def compare_lines(baseline: Baseline, tests: Mapping[str, TestUsage], width: int) -> list[str]:
    """Per-test change of tokens, cost and calls against a baseline, then the totals."""
    names = sorted(
        n
        for n in tests
        if tests[n].usage.calls or (n in baseline.tests and baseline.tests[n].usage.calls)
    )
    nums = sum(_CMP_W) + len(_CMP_W)
    name_w = name_width(names, width - nums - 1)
    lines = [_row("test", _CMP_HEAD, _CMP_W, name_w)]
    for n in names:
        b = baseline.tests.get(n)
        cells = _compare_cells(None if b is None else b.usage, tests[n].usage)
        lines.append(_row(n, cells, _CMP_W, name_w))
    common = [n for n in tests if n in baseline.tests]
    base_total = sum_usage(baseline.tests[n].usage for n in common)
    now_total = sum_usage(tests[n].usage for n in common)
    lines.append("-" * (name_w + nums))
    label = f"total of {len(common)} tests in both"
    lines.append(_row(label, _compare_cells(base_total, now_total), _CMP_W, name_w))
    new = [n for n in tests if n not in baseline.tests]
    gone = [n for n in baseline.tests if n not in tests]
    if new or gone:
        lines.append(
            f"{len(new)} test(s) not in the baseline, {len(gone)} baseline test(s) not run"
        )
    return lines
