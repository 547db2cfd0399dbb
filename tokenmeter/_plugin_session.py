"""The pytest plugin's session: settings, per-test usage, budgets, baselines and the summary.

Kept apart from :mod:`tokenmeter.pytest_plugin` (the hooks) so the logic can be read and
tested without pytest's hook machinery. Nothing here imports LiteLLM.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs

from ._usage import Usage, cost_to_units
from ._version import __version__

#: Name of the report's user property that carries a test's usage (also to xdist's controller).
PROPERTY = "tokenmeter"
SCHEMA = "tokenmeter.pytest"
SCHEMA_VERSION = 1
#: Where baselines live by default, under the rootdir (like pytest-benchmark's ``.benchmarks``).
DEFAULT_STORAGE = ".tokenmeter"
TOP_MODELS = 5

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SettingsError(ValueError):
    """A bad option or ini value (the plugin turns it into a pytest usage error)."""


# -- settings ----------------------------------------------------------------------------


@attrs.frozen
class Tolerance:
    """One ``--tokenmeter-compare-fail`` gate: ``tokens:10%``, ``cost:0.01``, ``calls:0``."""

    field: str
    amount: Fraction
    percent: bool
    text: str

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """Parse ``FIELD:AMOUNT`` or ``FIELD:PERCENT%`` (FIELD: tokens, cost or calls)."""
        field, sep, amount = text.strip().partition(":")
        field = field.strip().lower()
        amount = amount.strip()
        expected = (
            "expected FIELD:LIMIT with FIELD one of tokens, cost, calls and LIMIT a "
            "percentage (10%) or an absolute amount (tokens:500, calls:0, cost:0.01)"
        )
        if not sep or field not in ("tokens", "cost", "calls") or not amount:
            raise SettingsError(f"bad tokenmeter compare-fail {text!r}: {expected}")
        percent = amount.endswith("%")
        number = amount[:-1].strip() if percent else amount
        try:
            value = Fraction(number)
        except (ValueError, ZeroDivisionError):
            raise SettingsError(f"bad tokenmeter compare-fail {text!r}: {expected}") from None
        if value < 0:
            raise SettingsError(f"bad tokenmeter compare-fail {text!r}: the limit is negative")
        if not percent and field != "cost" and value.denominator != 1:
            raise SettingsError(f"bad tokenmeter compare-fail {text!r}: {field} is a whole number")
        if not percent and field == "cost":
            value = Fraction(cost_to_units(float(value)))
        return cls(field, value, percent, f"{field}:{amount}")

    def value_of(self, u: Usage) -> int:
        """The compared quantity of ``u`` as an exact integer (cost in 1e-10 USD units)."""
        if self.field == "tokens":
            return u.total_tokens
        if self.field == "calls":
            return u.calls
        return cost_to_units(u.cost_usd)

    def exceeded(self, base: Usage, now: Usage) -> bool:
        """Whether ``now`` grew from ``base`` by more than this tolerance."""
        b, n = self.value_of(base), self.value_of(now)
        if self.percent:
            return n * 100 > b * (100 + self.amount)
        return n - b > self.amount


@attrs.frozen
class Settings:
    """The plugin's options after CLI > ini > default resolution."""

    summary: bool = False
    json_path: Path | None = None
    max_cost_usd: float | None = None
    max_tokens: int | None = None
    max_calls: int | None = None
    save: str | None = None
    compare: str | None = None  # "" means the most recent baseline
    compare_fail: tuple[Tolerance, ...] = ()
    storage: Path = Path(DEFAULT_STORAGE)

    @property
    def active(self) -> bool:
        """Whether every test gets a scope and its usage is collected."""
        return bool(
            self.summary
            or self.json_path is not None
            or self.session_limits
            or self.save is not None
            or self.compare is not None
        )

    @property
    def session_limits(self) -> dict[str, float]:
        """The whole-session budget, by kind."""
        out: dict[str, float] = {}
        if self.max_calls is not None:
            out["max_calls"] = self.max_calls
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        if self.max_cost_usd is not None:
            out["max_cost_usd"] = self.max_cost_usd
        return out


def parse_int(name: str, text: str) -> int:
    """A non-negative integer option value, or SettingsError naming the option."""
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise SettingsError(f"{name}: expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise SettingsError(f"{name}: expected a non-negative integer, got {text!r}")
    return value


def parse_usd(name: str, text: str) -> float:
    """A non-negative dollar amount (``0.05`` or ``$0.05``), or SettingsError naming the option."""
    try:
        value = float(text.strip().lstrip("$"))
    except ValueError:
        raise SettingsError(f"{name}: expected a dollar amount like 0.05, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise SettingsError(f"{name}: expected a dollar amount like 0.05, got {text!r}")
    return value


def check_name(name: str) -> str:
    """A baseline name: a plain file name (letters, digits, ``.``, ``_``, ``-``)."""
    if not _NAME_RE.match(name):
        raise SettingsError(
            f"--tokenmeter-save: a baseline name is letters, digits, '.', '_' and '-' "
            f"(it names a file under the storage directory), got {name!r}"
        )
    return name


# -- per-test usage ----------------------------------------------------------------------


@attrs.frozen
class TestUsage:
    """What one test spent: inclusive usage, per model, and per scope inside the test."""

    __test__ = False  # not a test class, whatever pytest's collection thinks

    nodeid: str
    outcome: str
    usage: Usage
    by_model: Mapping[str, Usage]
    scopes: Mapping[str, Usage]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also what travels from an xdist worker)."""
        return {
            "outcome": self.outcome,
            "usage": self.usage.to_dict(),
            "by_model": {k: u.to_dict() for k, u in self.by_model.items()},
            "scopes": {k: u.to_dict() for k, u in self.scopes.items()},
        }

    @classmethod
    def from_dict(cls, nodeid: str, d: Mapping[str, Any]) -> TestUsage:
        """Rebuild from `to_dict` output."""
        return cls(
            nodeid,
            str(d.get("outcome", "")),
            Usage.from_dict(d["usage"]),
            {k: Usage.from_dict(v) for k, v in d.get("by_model", {}).items()},
            {k: Usage.from_dict(v) for k, v in d.get("scopes", {}).items()},
        )


def sum_usage(usages: Iterable[Usage]) -> Usage:
    """The exact sum of some usages."""
    total = Usage()
    for u in usages:
        total = total + u
    return total


def by_model(tests: Iterable[TestUsage]) -> dict[str, Usage]:
    """Usage per model over the tests, costliest first (then most tokens, then name)."""
    out: dict[str, Usage] = {}
    for t in tests:
        for model, u in t.by_model.items():
            out[model] = out[model] + u if model in out else u
    return dict(sorted(out.items(), key=lambda kv: (-kv[1].cost_usd, -kv[1].total_tokens, kv[0])))


# -- budgets -----------------------------------------------------------------------------


def fmt_value(kind: str, value: float) -> str:
    """A limit or a spend as shown in messages: dollars with 6 decimals, else an integer."""
    if kind == "max_cost_usd":
        return f"${value:.6f}"
    return f"{int(value):,}"


def spent_of(kind: str, u: Usage) -> float:
    """What ``u`` spent of the limit ``kind``."""
    if kind == "max_calls":
        return u.calls
    if kind == "max_tokens":
        return u.total_tokens
    return u.cost_usd


def spent_phrase(kind: str, u: Usage) -> str:
    """What ``u`` spent of the limit ``kind``, in words: 'used 1,200 tokens'."""
    if kind == "max_calls":
        return f"made {u.calls:,} call{'' if u.calls == 1 else 's'}"
    if kind == "max_tokens":
        return f"used {u.total_tokens:,} token{'' if u.total_tokens == 1 else 's'}"
    return f"spent ${u.cost_usd:.6f}"


def over(kind: str, limit: float, u: Usage) -> bool:
    """Whether ``u`` went over the limit (exactly: cost compared in integer units)."""
    if kind == "max_cost_usd":
        return cost_to_units(u.cost_usd) > cost_to_units(limit)
    return spent_of(kind, u) > limit


# -- machine and commit info ------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Where the run happened (as pytest-benchmark records it)."""
    uname = platform.uname()
    return {
        "node": uname.node,
        "system": uname.system,
        "release": uname.release,
        "machine": uname.machine,
        "python_implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
    }


def commit_info(where: Path) -> dict[str, Any]:
    """The git commit, branch and dirty flag of ``where`` (empty values outside git)."""
    info: dict[str, Any] = {"id": None, "branch": None, "dirty": None}

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args],
                cwd=where,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    info["id"] = git("rev-parse", "HEAD")
    if info["id"] is not None:
        info["branch"] = git("rev-parse", "--abbrev-ref", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
        info["dirty"] = None if status is None else bool(status)
    return info


def versions() -> dict[str, str | None]:
    """Versions that change what a suite spends or how it is priced."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "tokenmeter": __version__,
        "litellm": version("litellm"),
        "pytest": version("pytest"),
        "python": platform.python_version(),
    }


# -- the session document (JSON output and baselines) -----------------------------------


def session_document(
    tests: Mapping[str, TestUsage],
    rootdir: Path,
    failures: Iterable[str],
    session_limits: Mapping[str, float],
) -> dict[str, Any]:
    """The run as JSON-ready data: what ``--tokenmeter-json`` writes and baselines store."""
    ordered = [tests[k] for k in sorted(tests)]
    v = versions()
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created_at": _dt.datetime.now(tz=_dt.timezone.utc).isoformat(),
        "tokenmeter_version": v["tokenmeter"],
        "litellm_version": v["litellm"],
        "pytest_version": v["pytest"],
        "python_version": v["python"],
        "machine_info": machine_info(),
        "commit_info": commit_info(rootdir),
        "total": sum_usage(t.usage for t in ordered).to_dict(),
        "by_model": {k: u.to_dict() for k, u in by_model(ordered).items()},
        "session_budget": dict(session_limits),
        "failures": list(failures),
        "tests": {t.nodeid: t.to_dict() for t in ordered},
    }


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON atomically (a crash mid-write leaves the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, default=str) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".tokenmeter-", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@attrs.frozen
class Baseline:
    """A saved run to compare with."""

    name: str
    path: Path
    data: Mapping[str, Any]
    tests: Mapping[str, TestUsage]

    @property
    def label(self) -> str:
        """``'NAME' (commit abc1234, 2026-01-02)`` for headings."""
        commit = (self.data.get("commit_info") or {}).get("id")
        created = str(self.data.get("created_at") or "")[:10]
        bits = [b for b in (f"commit {commit[:7]}" if commit else "", created) if b]
        return f"{self.name!r}" + (f" ({', '.join(bits)})" if bits else "")


def baseline_path(storage: Path, name: str) -> Path:
    """The file a baseline named ``name`` is stored in."""
    return storage / f"{name}.json"


def load_baseline(storage: Path, name: str) -> Baseline:
    """Load baseline ``name`` (or the most recent when ``name`` is empty, or a .json path)."""
    if not name:
        saved = sorted(storage.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))
        if not saved:
            raise SettingsError(f"--tokenmeter-compare: no baseline saved in {storage} yet")
        path = saved[-1]
    elif name.endswith(".json"):
        path = Path(name)
    else:
        path = baseline_path(storage, name)
    if not path.is_file():
        known = sorted(p.stem for p in storage.glob("*.json")) if storage.is_dir() else []
        raise SettingsError(
            f"--tokenmeter-compare: no baseline {name!r} at {path}"
            + (f" (saved: {', '.join(known)})" if known else " (none saved yet)")
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SettingsError(f"--tokenmeter-compare: cannot read {path}: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise SettingsError(f"--tokenmeter-compare: {path} is not a tokenmeter pytest run")
    if not isinstance(data.get("schema_version"), int) or data["schema_version"] > SCHEMA_VERSION:
        raise SettingsError(
            f"--tokenmeter-compare: {path} was written by a newer tokenmeter; upgrade tokenmeter"
        )
    tests = {k: TestUsage.from_dict(k, v) for k, v in data.get("tests", {}).items()}
    return Baseline(path.stem, path, data, tests)


def compare_failures(
    baseline: Baseline, tests: Mapping[str, TestUsage], gates: Iterable[Tolerance]
) -> list[str]:
    """One message per test and gate where usage grew past the tolerance."""
    out: list[str] = []
    for nodeid in sorted(tests):
        base = baseline.tests.get(nodeid)
        if base is None:
            continue
        now = tests[nodeid]
        for gate in gates:
            if gate.exceeded(base.usage, now.usage):
                out.append(
                    f"{nodeid}: {gate.field} {_show(gate.field, base.usage)} -> "
                    f"{_show(gate.field, now.usage)} "
                    f"({_change(gate.value_of(base.usage), gate.value_of(now.usage))}), "
                    f"over the tolerance {gate.text}"
                )
    return out


def _show(field: str, u: Usage) -> str:
    if field == "tokens":
        return f"{u.total_tokens:,}"
    if field == "calls":
        return f"{u.calls:,}"
    return f"${u.cost_usd:.6f}"


def _change(base: int, now: int) -> str:
    if base == now:
        return "+0.0%"
    if base == 0:
        return "new"
    return f"{100 * (now - base) / base:+.1f}%"


# -- the terminal summary ----------------------------------------------------------------

_NUM_HEAD = ("calls", "input", "output", "cost", "unpriced")
_NUM_W = (6, 10, 10, 12, 9)


def _cells(u: Usage) -> list[str]:
    return [
        f"{u.calls:,}",
        f"{u.input_tokens:,}",
        f"{u.output_tokens:,}",
        f"${u.cost_usd:.6f}",
        f"{u.unpriced_calls:,}",
    ]


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text.ljust(width)
    return "…" + text[-(width - 1) :]


def _name_width(names: list[str], room: int) -> int:
    """Names are shown whole up to 60 characters even if a line then overflows the terminal."""
    longest = max([len(n) for n in names] + [24])
    return min(longest, max(room, 60))


def _line(label: str, cells: list[str], name_w: int) -> str:
    return _fit(label, name_w) + "".join(
        " " + c.rjust(w) for c, w in zip(cells, _NUM_W, strict=True)
    )


def summary_lines(tests: Mapping[str, TestUsage], width: int) -> list[str]:
    """The per-test table, the totals and the top models."""
    with_calls = [t for t in tests.values() if t.usage.calls]
    with_calls.sort(key=lambda t: (-t.usage.cost_usd, -t.usage.total_tokens, t.nodeid))
    nums = sum(_NUM_W) + len(_NUM_W)
    name_w = _name_width([t.nodeid for t in with_calls], width - nums - 1)
    lines = [_line("test", list(_NUM_HEAD), name_w)]
    for t in with_calls:
        lines.append(_line(t.nodeid, _cells(t.usage), name_w))
    total = sum_usage(t.usage for t in tests.values())
    lines.append("-" * (name_w + nums))
    n_tests = len(tests)
    label = f"total: {len(with_calls)} of {n_tests} test{'s' if n_tests != 1 else ''}"
    lines.append(_line(label, _cells(total), name_w))
    models = by_model(tests.values())
    if models:
        lines.append("")
        lines.append(_line("top models", list(_NUM_HEAD), name_w))
        for model, u in list(models.items())[:TOP_MODELS]:
            lines.append(_line(model, _cells(u), name_w))
        if len(models) > TOP_MODELS:
            lines.append(f"({len(models) - TOP_MODELS} more models in the JSON output)")
    if total.unpriced_calls:
        lines.append(
            f"{total.unpriced_calls:,} unpriced call(s): their model has no known price, "
            "so the cost shown is a lower bound"
        )
    return lines


def compare_lines(baseline: Baseline, tests: Mapping[str, TestUsage], width: int) -> list[str]:
    """Per-test change of tokens, cost and calls against a baseline."""
    names = sorted(
        n
        for n in set(tests) | set(baseline.tests)
        if (n in tests and tests[n].usage.calls)
        or (n in baseline.tests and baseline.tests[n].usage.calls and n in tests)
    )
    heads = ("tokens", "change", "cost", "change", "calls")
    widths = (22, 8, 26, 8, 12)
    nums = sum(widths) + len(widths)
    name_w = _name_width(names, width - nums - 1)

    def row(label: str, cells: Iterable[str]) -> str:
        return _fit(label, name_w) + "".join(
            " " + c.rjust(w) for c, w in zip(cells, widths, strict=True)
        )

    def cells(base: Usage | None, now: Usage) -> list[str]:
        if base is None:
            return [
                f"{now.total_tokens:,}",
                "new",
                f"${now.cost_usd:.6f}",
                "new",
                f"{now.calls:,}",
            ]
        return [
            f"{base.total_tokens:,} -> {now.total_tokens:,}",
            _change(base.total_tokens, now.total_tokens),
            f"${base.cost_usd:.6f} -> ${now.cost_usd:.6f}",
            _change(cost_to_units(base.cost_usd), cost_to_units(now.cost_usd)),
            f"{base.calls:,} -> {now.calls:,}",
        ]

    lines = [row("test", heads)]
    for n in names:
        b = baseline.tests.get(n)
        lines.append(row(n, cells(None if b is None else b.usage, tests[n].usage)))
    common = [n for n in tests if n in baseline.tests]
    base_total = sum_usage(baseline.tests[n].usage for n in common)
    now_total = sum_usage(tests[n].usage for n in common)
    lines.append("-" * (name_w + nums))
    lines.append(row(f"total of {len(common)} tests in both", cells(base_total, now_total)))
    new = [n for n in tests if n not in baseline.tests]
    gone = [n for n in baseline.tests if n not in tests]
    if new or gone:
        lines.append(
            f"{len(new)} test(s) not in the baseline, {len(gone)} baseline test(s) not run"
        )
    return lines
