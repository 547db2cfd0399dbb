"""The plugin's pieces without pytest's hooks: settings, tolerances, budgets, baselines, tables."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

import tokenmeter as tm
from tokenmeter._pytest import baselines, budgets, tables
from tokenmeter._pytest.results import TestUsage, by_model, sum_usage
from tokenmeter._pytest.settings import (
    Settings,
    SettingsError,
    Tolerance,
    check_name,
    parse_int,
    parse_usd,
    resolve,
)


def usage(calls: int, i: int, o: int, cost: float, unpriced: int = 0) -> tm.Usage:
    return tm.Usage(
        calls=calls, input_tokens=i, output_tokens=o, cost_usd=cost, unpriced_calls=unpriced
    )


def result(nodeid: str, u: tm.Usage, model: str = "gpt-4o-mini") -> TestUsage:
    return TestUsage(nodeid, "passed", u, {model: u} if u.calls else {}, {})


# -- settings -------------------------------------------------------------------------


def test_tolerance_parses_percentages_and_exact_amounts() -> None:
    """FIELD:N% keeps the percentage; cost:USD becomes exact 1e-10 USD units."""
    assert Tolerance.parse(" Tokens : 10% ") == Tolerance(
        "tokens", Fraction(10), True, "tokens:10%"
    )
    assert Tolerance.parse("cost:0.01") == Tolerance(
        "cost", Fraction(100_000_000), False, "cost:0.01"
    )
    assert Tolerance.parse("calls:0") == Tolerance("calls", Fraction(0), False, "calls:0")
    assert Tolerance.parse("cost:2.5%").amount == Fraction(5, 2)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("speed:10%", "expected FIELD:LIMIT"),
        ("tokens", "expected FIELD:LIMIT"),
        ("tokens:", "expected FIELD:LIMIT"),
        ("tokens:lots", "expected FIELD:LIMIT"),
        ("tokens:-1", "the limit is negative"),
        ("calls:1.5", "calls is a whole number"),
    ],
)
def test_bad_tolerances_name_the_text(text: str, why: str) -> None:
    """A tolerance that cannot be read is a SettingsError quoting it and saying why."""
    with pytest.raises(SettingsError) as info:
        Tolerance.parse(text)
    assert str(info.value).startswith(f"bad tokenmeter compare-fail {text!r}: {why}")


def test_tolerance_limits_are_exact_at_the_edge() -> None:
    """Growth equal to the tolerance passes; one unit more fails."""
    ten = Tolerance.parse("tokens:10%")
    assert not ten.exceeded(usage(1, 600, 400, 0), usage(1, 700, 400, 0))  # 1,000 -> 1,100
    assert ten.exceeded(usage(1, 600, 400, 0), usage(1, 701, 400, 0))  # -> 1,101
    assert ten.exceeded(usage(0, 0, 0, 0), usage(1, 1, 0, 0))  # from nothing
    cent = Tolerance.parse("cost:0.01")
    assert not cent.exceeded(usage(1, 0, 0, 0.1), usage(1, 0, 0, 0.11))
    assert cent.exceeded(usage(1, 0, 0, 0.1), usage(1, 0, 0, 0.1100000001))
    zero = Tolerance.parse("calls:0")
    assert not zero.exceeded(usage(2, 0, 0, 0), usage(2, 0, 0, 0))
    assert zero.value_of(usage(3, 1, 1, 0)) == 3
    assert zero.exceeded(usage(2, 0, 0, 0), usage(3, 0, 0, 0))
    assert not zero.exceeded(usage(2, 0, 0, 0), usage(1, 0, 0, 0))


def test_option_values_are_checked_and_named() -> None:
    """Integers take _ and , separators, dollars a $; bad values name the option."""
    assert (parse_int("--n", "1_000"), parse_int("--n", "2,500"), parse_int("--n", "0")) == (
        1000,
        2500,
        0,
    )
    assert (parse_usd("--usd", "$0.05"), parse_usd("--usd", " 1 ")) == (0.05, 1.0)
    for text in ("-1", "x", "1.5"):
        with pytest.raises(
            SettingsError, match=f"^--n: expected a non-negative integer, got {text!r}$"
        ):
            parse_int("--n", text)
    for text in ("lots", "-0.01", "inf", "nan"):
        with pytest.raises(SettingsError, match=r"^--usd: expected a dollar amount like 0\.05"):
            parse_usd("--usd", text)
    assert check_name("main-2026.01_a") == "main-2026.01_a"
    for name in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(SettingsError, match=r"^--tokenmeter-save: a baseline name is"):
            check_name(name)


def test_resolve_builds_settings_and_refuses_gates_without_a_baseline() -> None:
    """Defaults are inactive; any output, budget or baseline activates; gates need --compare."""
    assert resolve() == Settings()
    assert not Settings().active
    s = resolve(max_calls="10", max_cost_usd="$0.5", compare="", compare_fail=["calls:0"])
    assert s.active
    assert s.session_limits == {"max_calls": 10, "max_cost_usd": 0.5}
    assert s.compare_fail == (Tolerance.parse("calls:0"),)
    assert resolve(json_path="out.json").json_path == Path("out.json")
    assert resolve(storage="runs").storage == Path("runs")
    with pytest.raises(SettingsError, match="needs a baseline: add --tokenmeter-compare=NAME"):
        resolve(compare_fail=["tokens:5%"])


# -- budgets ---------------------------------------------------------------------------


class _Item:
    """Enough of a pytest item for `marker_budgets`."""

    nodeid = "test_x.py::test_x"

    def __init__(self, *marks: pytest.MarkDecorator) -> None:
        self._marks = [m.mark for m in marks]

    def iter_markers(self, name: str) -> Iterator[pytest.Mark]:
        return (m for m in self._marks if m.name == name)


def test_markers_become_budgets_by_scope_path_closest_first() -> None:
    """scope= is a path relative to the test; the closest marker for a path wins."""
    item = _Item(
        pytest.mark.token_budget(max_calls=2),
        pytest.mark.token_budget(scope="/agent/planner/", max_cost_usd=0.01),
        pytest.mark.token_budget(max_calls=9, max_tokens=None),
    )
    assert budgets.marker_budgets(item) == {  # type: ignore[arg-type]
        (): {"max_calls": 2},
        ("agent", "planner"): {"max_cost_usd": 0.01},
    }


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        (pytest.mark.token_budget(5), "takes keyword arguments only, got (5,)"),
        (pytest.mark.token_budget(max_cost=1), "unknown argument(s) max_cost; expected"),
        (pytest.mark.token_budget(scope="agent"), "give at least one of max_tokens"),
        (pytest.mark.token_budget(scope="/", max_calls=1), "scope must be a scope name or path"),
        (pytest.mark.token_budget(max_calls=-1), "max_calls must be a non-negative integer"),
    ],
)
def test_bad_markers_name_the_test_and_the_argument(
    mark: pytest.MarkDecorator, message: str
) -> None:
    """A marker that cannot be honoured is a MarkerError naming the test."""
    with pytest.raises(budgets.MarkerError) as info:
        budgets.marker_budgets(_Item(mark))  # type: ignore[arg-type]
    assert str(info.value).startswith(f"@pytest.mark.token_budget on test_x.py::test_x: {message}")


def test_budget_verdicts_are_exact_and_worded() -> None:
    """Spends are worded per kind; cost compares in exact units (0.1 + 0.2 is not over 0.3)."""
    u = usage(1, 700, 500, 0.1) + usage(1, 0, 0, 0.2)
    assert budgets.spent_phrase("max_calls", usage(1, 0, 0, 0)) == "made 1 call"
    assert budgets.spent_phrase("max_tokens", u) == "used 1,200 tokens"
    assert budgets.spent_phrase("max_cost_usd", u) == "spent $0.300000"
    assert not budgets.over("max_cost_usd", 0.3, u)
    assert budgets.over("max_tokens", 1199, u)
    assert not budgets.over("max_tokens", 1200, u)
    assert budgets.fmt_value("max_tokens", 10_000) == "10,000"
    assert budgets.session_problems({"max_calls": 1, "max_cost_usd": 1.0}, u) == [
        "the session made 2 calls, over its budget max_calls=1"
    ]


def test_budget_problems_name_refusals_and_overruns() -> None:
    """A budget reached with calls refused, and one gone over, each give one message."""
    with tm.Meter().track("t") as scope:
        tm.record(model="m", input_tokens=300, output_tokens=0, cost_usd=0.0)
    limits = tm.Limits(max_calls=1, max_tokens=200)
    refused = [tm.BudgetExceeded(("t",), "max_calls", 1, 1)] * 2
    b = budgets.Budget((), limits, scope)
    assert b.problems("t.py::t", refused) == [
        "token_budget exceeded: t.py::t reached max_calls=1 (made 1 call) and 2 more calls "
        "were refused",
        "token_budget exceeded: t.py::t used 300 tokens, over max_tokens=200",
    ]
    inner = budgets.Budget(("a", "b"), limits, scope)
    assert inner.who("t.py::t") == "scope 'a/b' of t.py::t"
    assert budgets.entered(scope) == "none"


# -- results and baselines ---------------------------------------------------------------


def test_test_usage_round_trips_and_sums_by_model() -> None:
    """A test's usage survives its JSON form; by_model sorts costliest first."""
    with tm.Meter().track("t.py::t") as scope:
        tm.record(model="a", input_tokens=1, output_tokens=2, cost_usd=0.5)
        with tm.track("critic"):
            tm.record(model="b", input_tokens=3, output_tokens=4, cost_usd=1.5)
    t = TestUsage.of_scope("t.py::t", scope)
    assert t.usage == usage(2, 4, 6, 2.0)
    assert dict(t.scopes) == {"critic": usage(1, 3, 4, 1.5)}
    back = TestUsage.from_dict("t.py::t", json.loads(t.to_property()))
    assert back == t
    assert list(by_model([t, t])) == ["b", "a"]
    assert by_model([t, t])["a"] == usage(2, 2, 4, 1.0)
    assert sum_usage([t.usage, t.usage]) == usage(4, 8, 12, 4.0)


def _save(storage: Path, name: str, tests: dict[str, TestUsage]) -> Path:
    path = baselines.baseline_path(storage, name)
    baselines.write_json(path, baselines.session_document(tests, storage, [], {}))
    return path


def test_baselines_load_by_name_latest_or_path(tmp_path: Path) -> None:
    """A saved run loads back exactly; no name means the newest; a .json path loads that file."""
    storage = tmp_path / ".tokenmeter"
    old = _save(storage, "old", {"t::a": result("t::a", usage(1, 10, 5, 0.001))})
    new = _save(storage, "new", {"t::a": result("t::a", usage(2, 20, 10, 0.002))})
    os.utime(old, (1_000_000, 1_000_000))
    assert baselines.load_baseline(storage, "old").tests["t::a"].usage == usage(1, 10, 5, 0.001)
    latest = baselines.load_baseline(storage, "")
    assert (latest.name, latest.tests["t::a"].usage.calls) == ("new", 2)
    assert baselines.load_baseline(storage, str(new)).path == new
    assert latest.label.startswith("'new' (")
    assert oct(new.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no baseline 'gone' at {path} (saved: ok)"),
        ("{not json", "cannot read {path}: "),
        ('{"schema": "other"}', "{path} is not a tokenmeter pytest run"),
        ('{"schema": "tokenmeter.pytest", "schema_version": 2}', "{path} was written by a newer"),
        ("[" * 100_000 + "]" * 100_000, "cannot read {path}: nested too deeply"),
        (
            '{"schema": "tokenmeter.pytest", "schema_version": 0}',
            "{path}: schema_version must be a positive integer, got 0",
        ),
        (
            '{"schema": "tokenmeter.pytest", "schema_version": "1"}',
            "{path}: schema_version must be a positive integer, got '1'",
        ),
        (
            '{"schema": "tokenmeter.pytest", "schema_version": 1, "tests": {"t::a": {}}}',
            "{path}: tests['t::a'] is not a test's usage",
        ),
        (
            '{"schema": "tokenmeter.pytest", "schema_version": 1, '
            '"tests": {"t::a": {"usage": {}, "usage": {}}}}',
            "{path}: tests['t::a']: duplicate key 'usage'",
        ),
    ],
)
def test_bad_baselines_are_settings_errors_naming_the_file(
    tmp_path: Path, content: str | None, message: str
) -> None:
    """A missing, unreadable, foreign, newer or malformed baseline (a key twice) says which."""
    storage = tmp_path / ".tokenmeter"
    _save(storage, "ok", {})
    path = storage / "gone.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError) as info:
        baselines.load_baseline(storage, "gone")
    assert str(info.value).startswith("--tokenmeter-compare: " + message.format(path=path))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_bare_nan_in_a_baseline_is_a_settings_error_naming_the_file(
    tmp_path: Path, constant: str
) -> None:
    """A baseline whose total cost was edited to a bare NaN or infinity is refused, as by load."""
    storage = tmp_path / ".tokenmeter"
    path = _save(storage, "odd", {"t::a": result("t::a", usage(1, 10, 5, 0.001))})
    data = json.loads(path.read_text())
    data["total"]["cost_usd"] = "__constant__"
    path.write_text(json.dumps(data).replace('"__constant__"', constant))
    with pytest.raises(SettingsError) as info:
        baselines.load_baseline(storage, "odd")
    assert str(info.value) == (
        f"--tokenmeter-compare: cannot read {path}: {constant} is not a JSON number"
    )


def test_no_baseline_saved_yet(tmp_path: Path) -> None:
    """Comparing with the latest baseline before any was saved is a clear error."""
    with pytest.raises(SettingsError, match=r"^--tokenmeter-compare: no baseline saved in .* yet$"):
        baselines.load_baseline(tmp_path, "")


def test_compare_failures_and_changes_are_exact() -> None:
    """Each test past a gate gives one message with both values and the change."""
    base = baselines.Baseline(
        "base",
        Path("base.json"),
        {},
        {
            "t::a": result("t::a", usage(1, 100, 50, 0.001)),
            "t::b": result("t::b", usage(0, 0, 0, 0)),
        },
    )
    now = {
        "t::a": result("t::a", usage(1, 200, 100, 0.001)),
        "t::b": result("t::b", usage(1, 1, 1, 0)),
        "t::new": result("t::new", usage(5, 5, 5, 5)),
    }
    gates = [Tolerance.parse("tokens:10%"), Tolerance.parse("cost:0")]
    assert baselines.compare_failures(base, now, gates) == [
        "t::a: tokens 150 -> 300 (+100.0%), over the tolerance tokens:10%",
        "t::b: tokens 0 -> 2 (new), over the tolerance tokens:10%",
    ]
    assert [baselines.change(4, 4), baselines.change(0, 3), baselines.change(8, 6)] == [
        "+0.0%",
        "new",
        "-25.0%",
    ]


# -- tables ------------------------------------------------------------------------------


def test_summary_table_lines() -> None:
    """Tests with calls, costliest first, then the total, the top models and the unpriced note."""
    tests = {
        "t::cheap": result("t::cheap", usage(1, 10, 5, 0.000001)),
        "t::dear": result("t::dear", usage(2, 2000, 1000, 0.5), "claude"),
        "t::none": result("t::none", usage(0, 0, 0, 0)),
        "t::local": result("t::local", usage(1, 7, 7, 0, unpriced=1), "local"),
    }
    assert tables.summary_lines(tests, 120) == [
        "test                      calls      input     output         cost  unpriced",
        "t::dear                       2      2,000      1,000    $0.500000         0",
        "t::cheap                      1         10          5    $0.000001         0",
        "t::local                      1          7          7    $0.000000         1",
        "-" * 76,
        "total: 3 of 4 tests           4      2,017      1,012    $0.500001         1",
        "",
        "top models                calls      input     output         cost  unpriced",
        "claude                        2      2,000      1,000    $0.500000         0",
        "gpt-4o-mini                   1         10          5    $0.000001         0",
        "local                         1          7          7    $0.000000         1",
        "1 unpriced call(s): their model has no known price, so the cost shown is a lower bound",
    ]


def test_long_test_ids_are_cut_from_the_left() -> None:
    """Names over 60 characters keep their end, where parametrized ids differ."""
    long = "tests/" + "x" * 70 + "::test[7]"
    lines = tables.summary_lines({long: result(long, usage(1, 1, 1, 0))}, 80)
    assert lines[1].startswith("…" + long[-59:] + " ")


def test_compare_table_lines() -> None:
    """Each test's tokens, cost and calls before -> after, then the totals of tests in both."""
    base = baselines.Baseline(
        "base", Path("b.json"), {}, {"t::a": result("t::a", usage(1, 100, 50, 0.001))}
    )
    now = {
        "t::a": result("t::a", usage(1, 150, 75, 0.0015)),
        "t::b": result("t::b", usage(1, 1, 1, 0)),
    }
    head = "test" + " " * 37 + "tokens   change" + " " * 23 + "cost   change        calls"
    row_a = "150 -> 225   +50.0%     $0.001000 -> $0.001500   +50.0%       1 -> 1"
    assert tables.compare_lines(base, now, 120) == [
        head,
        "t::a" + " " * 33 + row_a,
        "t::b" + " " * 42 + "2      new                  $0.000000      new            1",
        "-" * 105,
        "total of 1 tests in both" + " " * 13 + row_a,
        "1 test(s) not in the baseline, 0 baseline test(s) not run",
    ]


@pytest.mark.parametrize("size", [2**30, 256 * 2**20 + 1])
def test_a_baseline_past_the_size_limit_is_refused_unread(tmp_path: Path, size: int) -> None:
    """A 1 GB (or 256 MiB + 1 byte) baseline file: SettingsError naming file and size, not read."""
    import tracemalloc

    storage = tmp_path / ".tokenmeter"
    storage.mkdir()
    path = storage / "huge.json"
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: no disk used
    tracemalloc.start()
    try:
        with pytest.raises(SettingsError) as info:
            baselines.load_baseline(storage, "huge")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == (
        f"--tokenmeter-compare: {path} is {size:,} bytes, larger than a baseline may be "
        "(268,435,456 bytes, 256 MiB)"
    )
    assert peak < 1_000_000
