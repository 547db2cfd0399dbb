"""The pytest plugin, run as users run it: generated test suites in a pytest subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest
from support.runs import PYTESTER_INI as INI
from support.runs import isolate_env, run_python

pytest_plugins = ["pytester"]

# A suite making real LiteLLM calls (mocked: no network). gpt-4o-mini's price in
# LiteLLM's bundled map: $0.15 per million input tokens, $0.60 per million output
# tokens, so a call of 100 input + 50 output tokens costs exactly $0.000045.
LITELLM_SUITE = """
import asyncio
import threading

import litellm
import pytest

import tokenmeter as tm

MESSAGES = [{"role": "user", "content": "hi"}]


def reply(i, o, model):
    usage = litellm.Usage(prompt_tokens=i, completion_tokens=o, total_tokens=i + o)
    return litellm.ModelResponse(model=model, usage=usage)


def ask(i=100, o=50, model="gpt-4o-mini"):
    return litellm.completion(model=model, messages=MESSAGES, mock_response=reply(i, o, model))


async def aask(i=100, o=50):
    return await litellm.acompletion(
        model="gpt-4o-mini", messages=MESSAGES, mock_response=reply(i, o, "gpt-4o-mini")
    )


def test_cheap(tokenmeter_scope):
    ask()
    ask()
    with tm.track("planner"):
        ask()
    assert tokenmeter_scope.path == ("test_agent.py::test_cheap",)
    assert tokenmeter_scope.usage.calls == 3
    assert tokenmeter_scope.report().node("planner").usage.calls == 1
    assert tm.current() is tokenmeter_scope


@pytest.mark.token_budget(max_tokens=200)
def test_over_tokens():
    ask()
    ask()  # starts at 150 tokens < 200: goes ahead, ends at 300


@pytest.mark.token_budget(max_calls=1)
def test_refused():
    ask()
    ask()


@pytest.mark.token_budget(max_calls=1)
def test_refused_and_caught():
    ask()
    try:
        ask()
    except tm.BudgetExceeded:
        pass


@pytest.mark.token_budget(scope="agent/planner", max_cost_usd=0.00005)
def test_scope_budget():
    with tm.track("agent"):
        ask()
        with tm.track("planner"):
            ask(200, 100)  # $0.000090


@pytest.mark.token_budget(max_calls=2)
async def test_async_ok(tokenmeter_scope):
    await asyncio.gather(aask(), aask())
    assert tokenmeter_scope.usage.calls == 2


@pytest.mark.token_budget(max_calls=3)
async def test_async_refused():
    await asyncio.gather(aask(), aask(), aask())
    with pytest.raises(tm.BudgetExceeded):
        await aask()


def test_thread(tokenmeter_scope):
    t = threading.Thread(target=ask)
    t.start()
    t.join()
    assert tokenmeter_scope.usage.calls == 1


def test_unpriced(tokenmeter_scope):
    ask(model="openai/my-local-model")
    assert tokenmeter_scope.usage.unpriced_calls == 1


def test_no_calls():
    pass
"""

# A suite of manual records with explicit costs and provider: it never imports LiteLLM
# (to price or to name the provider), so runs are fast. SCALE multiplies every number
# (to make a regression against a baseline).
RECORD_SUITE = """
import os

import pytest

import tokenmeter as tm

SCALE = int(os.environ.get("SCALE", "1"))


def spend(model, i, o, cost):
    tm.record(model=model, provider="acme", input_tokens=i * SCALE, output_tokens=o * SCALE,
              cost_usd=cost * SCALE)


def test_a():
    spend("gpt-4o-mini", 100, 50, 0.0001)


def test_b():
    spend("claude-haiku", 1000, 500, 0.002)
    with tm.track("critic"):
        spend("gpt-4o-mini", 10, 5, 0.00001)


@pytest.mark.token_budget(max_calls=1)
def test_c():
    spend("gpt-4o-mini", 1, 1, 0.0)
    spend("gpt-4o-mini", 1, 1, 0.0)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_many(n):
    spend("gpt-4o-mini", 10 * n, n, 0.00001 * n)
"""


@pytest.fixture(autouse=True)
def _subprocess_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated runs raise internal errors and do not think they are xdist workers."""
    isolate_env(monkeypatch)


def test_litellm_suite_budgets_table_and_json(pytester: pytest.Pytester) -> None:
    """Budgets fail the right tests with exact messages; the table and JSON match the calls."""
    pytester.makeini(INI)
    pytester.makepyfile(test_agent=LITELLM_SUITE)
    result = pytester.runpytest_subprocess("--tokenmeter", "--tokenmeter-json=out.json")
    result.assert_outcomes(passed=5, failed=5)
    result.stdout.fnmatch_lines(
        [
            "*_ test_over_tokens _*",
            "token_budget exceeded: test_agent.py::test_over_tokens used 300 tokens, "
            "over max_tokens=200",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_refused _*",
            "E * tokenmeter.BudgetExceeded: token budget exceeded in scope "
            "'test_agent.py::test_refused': max_calls=1, spent 1",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_refused_and_caught _*",
            "token_budget exceeded: test_agent.py::test_refused_and_caught reached "
            "max_calls=1 (made 1 call) and 1 more call was refused",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_scope_budget _*",
            "token_budget exceeded: scope 'agent/planner' of test_agent.py::test_scope_budget "
            "spent $0.000090, over max_cost_usd=$0.000050",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_async_refused _*",
            "token_budget exceeded: test_agent.py::test_async_refused reached max_calls=3 "
            "(made 3 calls) and 1 more call was refused",
        ]
    )
    # Costliest first; ties by tokens, then by test id.
    result.stdout.fnmatch_lines(
        [
            "*- tokenmeter: LLM usage per test -*",
            "test * calls * input * output * cost * unpriced",
            "test_agent.py::test_async_refused * 3 * 300 * 150 * $0.000135 * 0",
            "test_agent.py::test_cheap * 3 * 300 * 150 * $0.000135 * 0",
            "test_agent.py::test_scope_budget * 2 * 300 * 150 * $0.000135 * 0",
            "test_agent.py::test_async_ok * 2 * 200 * 100 * $0.000090 * 0",
            "test_agent.py::test_over_tokens * 2 * 200 * 100 * $0.000090 * 0",
            "test_agent.py::test_refused * 1 * 100 * 50 * $0.000045 * 0",
            "test_agent.py::test_refused_and_caught * 1 * 100 * 50 * $0.000045 * 0",
            "test_agent.py::test_thread * 1 * 100 * 50 * $0.000045 * 0",
            "test_agent.py::test_unpriced * 1 * 100 * 50 * $0.000000 * 1",
            "-----*",
            "total: 9 of 10 tests * 16 * 1,700 * 850 * $0.000720 * 1",
            "",
            "top models * calls * input * output * cost * unpriced",
            "gpt-4o-mini * 15 * 1,600 * 800 * $0.000720 * 0",
            "my-local-model * 1 * 100 * 50 * $0.000000 * 1",
            "1 unpriced call(s): their model has no known price, so the cost shown is a "
            "lower bound",
            "tokenmeter: usage JSON written to */out.json",
        ]
    )
    data = json.loads((pytester.path / "out.json").read_text())
    assert (data["schema"], data["schema_version"]) == ("tokenmeter.pytest", 1)
    assert list(data["tests"]) == sorted(data["tests"])
    assert len(data["tests"]) == 10
    cheap = data["tests"]["test_agent.py::test_cheap"]
    assert (cheap["outcome"], cheap["usage"]["calls"], cheap["usage"]["total_tokens"]) == (
        "passed",
        3,
        450,
    )
    assert cheap["scopes"]["planner"]["calls"] == 1
    assert data["tests"]["test_agent.py::test_refused"]["outcome"] == "failed"
    scoped = data["tests"]["test_agent.py::test_scope_budget"]["scopes"]
    assert (scoped["agent"]["calls"], scoped["agent/planner"]["cost_usd"]) == (2, 0.00009)
    assert (data["total"]["calls"], data["total"]["cost_usd"]) == (16, 0.00072)
    assert data["by_model"]["gpt-4o-mini"]["calls"] == 15
    assert data["litellm_version"] == metadata.version("litellm")


def _table(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if "tokenmeter: LLM usage per test" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("tokenmeter: usage JSON"))
    return lines[start:end]


def test_xdist_gives_the_same_summary_budgets_and_json(pytester: pytest.Pytester) -> None:
    """With -n 2 the table, the budget failures and the JSON are those of a plain run."""
    pytester.makeini(INI)
    pytester.makepyfile(test_rec=RECORD_SUITE)
    plain = pytester.runpytest_subprocess("--tokenmeter", "--tokenmeter-json=plain.json")
    xdist = pytester.runpytest_subprocess("--tokenmeter", "--tokenmeter-json=xdist.json", "-n", "2")
    plain.assert_outcomes(passed=6, failed=1)
    xdist.assert_outcomes(passed=6, failed=1)
    for result in (plain, xdist):
        result.stdout.fnmatch_lines(
            [
                "token_budget exceeded: test_rec.py::test_c made 2 calls, over max_calls=1",
                "*- tokenmeter: LLM usage per test -*",
                "test * calls * input * output * cost * unpriced",
                "test_rec.py::test_b * 2 * 1,010 * 505 * $0.002010 * 0",
                "test_rec.py::test_a * 1 * 100 * 50 * $0.000100 * 0",
                "test_rec.py::test_many[[]4] * 1 * 40 * 4 * $0.000040 * 0",
                "test_rec.py::test_many[[]3] * 1 * 30 * 3 * $0.000030 * 0",
                "test_rec.py::test_many[[]2] * 1 * 20 * 2 * $0.000020 * 0",
                "test_rec.py::test_many[[]1] * 1 * 10 * 1 * $0.000010 * 0",
                "test_rec.py::test_c * 2 * 2 * 2 * $0.000000 * 0",
                "-----*",
                "total: 7 of 7 tests * 9 * 1,212 * 567 * $0.002210 * 0",
                "",
                "top models * calls * input * output * cost * unpriced",
                "claude-haiku * 1 * 1,000 * 500 * $0.002000 * 0",
                "gpt-4o-mini * 8 * 212 * 67 * $0.000210 * 0",
            ]
        )
    assert _table(plain.outlines) == _table(xdist.outlines)
    a = json.loads((pytester.path / "plain.json").read_text())
    b = json.loads((pytester.path / "xdist.json").read_text())
    assert a["tests"] == b["tests"]
    assert (a["total"], a["by_model"]) == (b["total"], b["by_model"])
    assert a["tests"]["test_rec.py::test_b"]["scopes"]["critic"]["calls"] == 1
    assert a["tests"]["test_rec.py::test_c"]["outcome"] == "failed"


def test_session_budget_from_ini_fails_the_run_and_cli_wins(pytester: pytest.Pytester) -> None:
    """An ini session budget fails a green run; the same option on the command line wins."""
    pytester.makeini(
        INI
        + """
tokenmeter = true
tokenmeter_max_cost_usd = 0.002
tokenmeter_max_calls = 100
"""
    )
    pytester.makepyfile(test_rec=RECORD_SUITE)
    over = pytester.runpytest_subprocess("-k", "not test_c")
    over.assert_outcomes(passed=6)
    assert over.ret == pytest.ExitCode.TESTS_FAILED
    over.stdout.fnmatch_lines(
        [
            "tokenmeter: usage per test; session budget max_calls=100, max_cost_usd=$0.002000",
            "*- tokenmeter: LLM usage per test -*",
            "tokenmeter: FAILED: the session spent $0.002210, over its budget "
            "max_cost_usd=$0.002000",
        ]
    )
    ok = pytester.runpytest_subprocess("-k", "not test_c", "--tokenmeter-max-cost-usd=$0.01")
    assert ok.ret == pytest.ExitCode.OK
    ok.stdout.no_fnmatch_line("*tokenmeter: FAILED*")
    calls = pytester.runpytest_subprocess("-k", "not test_c", "--tokenmeter-max-calls=6", "-q")
    assert calls.ret == pytest.ExitCode.TESTS_FAILED
    calls.stdout.fnmatch_lines(
        ["tokenmeter: FAILED: the session made 7 calls, over its budget max_calls=6"]
    )


def test_baselines_save_compare_and_fail_on_regression(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A saved baseline records machine, commit and versions; a 2x run fails tokens:10%."""
    pytester.makeini(INI)
    pytester.makepyfile(test_rec=RECORD_SUITE)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=pytester.path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=pytester.path, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=pytester.path, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=pytester.path, capture_output=True, text=True
    ).stdout.strip()

    saved = pytester.runpytest_subprocess("--tokenmeter-save=base", "-k", "not test_c")
    assert saved.ret == pytest.ExitCode.OK
    saved.stdout.fnmatch_lines(["tokenmeter: baseline 'base' written to */.tokenmeter/base.json"])
    data = json.loads((pytester.path / ".tokenmeter" / "base.json").read_text())
    assert data["commit_info"] == {
        "id": head,
        "branch": data["commit_info"]["branch"],
        "dirty": False,
    }
    assert data["machine_info"]["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert data["tokenmeter_version"] == "0.1.0"
    assert data["litellm_version"] is not None
    assert data["tests"]["test_rec.py::test_a"]["usage"]["total_tokens"] == 150

    monkeypatch.setenv("SCALE", "2")
    worse = pytester.runpytest_subprocess(
        "--tokenmeter-compare=base",
        "--tokenmeter-compare-fail=tokens:10%",
        "--tokenmeter-compare-fail=calls:0",
        "-k",
        "not test_c",
    )
    worse.assert_outcomes(passed=6)
    assert worse.ret == pytest.ExitCode.TESTS_FAILED
    worse.stdout.fnmatch_lines(
        [
            "*- tokenmeter: change against baseline 'base' (commit *) -*",
            "test * tokens * change * cost * change * calls",
            "test_rec.py::test_a * 150 -> 300 * +100.0% * $0.000100 -> $0.000200 * +100.0% "
            "* 1 -> 1",
            "*",
            "total of 6 tests in both * 1,775 -> 3,550 * +100.0% * $0.002210 -> $0.004420 "
            "* +100.0% * 7 -> 7",
            "tokenmeter: FAILED: regression against baseline 'base': test_rec.py::test_a: "
            "tokens 150 -> 300 (+100.0%), over the tolerance tokens:10%",
        ]
    )
    assert sum("tokenmeter: FAILED" in line for line in worse.outlines) == 6  # not calls:0

    # The latest baseline when no name is given; an absolute tolerance that holds.
    monkeypatch.setenv("SCALE", "1")
    same = pytester.runpytest_subprocess(
        "--tokenmeter-compare", "--tokenmeter-compare-fail=cost:0.000001", "-k", "not test_c"
    )
    assert same.ret == pytest.ExitCode.OK
    same.stdout.fnmatch_lines(["test_rec.py::test_a * 150 -> 150 * +0.0% * 1 -> 1"])


def test_inactive_unless_used_and_marker_errors(pytester: pytest.Pytester) -> None:
    """Without options only marked or fixture tests get a scope; bad markers error clearly."""
    pytester.makeini(INI)
    pytester.makepyfile(
        test_plain="""
        import pytest
        import tokenmeter as tm

        def test_unmarked():
            assert tm.current().path == ()
            tm.record(model="m", provider="acme", input_tokens=1, output_tokens=1, cost_usd=0.0)
            assert tm.report().total.calls == 1

        @pytest.mark.token_budget(max_calls=5)
        def test_marked():
            assert tm.current().path == ("test_plain.py::test_marked",)

        def test_fixture_by_name(request):
            scope = request.getfixturevalue("tokenmeter_scope")
            assert scope.path == ("test_plain.py::test_fixture_by_name",)

        @pytest.mark.token_budget(max_calls=-1)
        def test_negative():
            pass

        @pytest.mark.token_budget(max_cost=1)
        def test_unknown_kwarg():
            pass

        @pytest.mark.token_budget(scope="plannr", max_calls=1)
        def test_typo_scope():
            with tm.track("planner"):
                pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines_random(
        [
            "@pytest.mark.token_budget on test_plain.py::test_negative: max_calls must be a "
            "non-negative integer or None, got -1",
            "@pytest.mark.token_budget on test_plain.py::test_unknown_kwarg: unknown "
            "argument(s) max_cost; expected max_tokens, max_cost_usd, max_calls, scope",
            "*TokenmeterWarning: token_budget scope 'plannr' was never entered in "
            "test_plain.py::test_typo_scope; scopes entered: 'planner'",
        ]
    )
    result.stdout.no_fnmatch_line("*tokenmeter: usage per test*")
    result.stdout.no_fnmatch_line("*LLM usage per test*")


def test_bad_options_are_usage_errors(pytester: pytest.Pytester) -> None:
    """Bad option values stop the run with a usage error naming the option."""
    pytester.makeini(INI)
    pytester.makepyfile(test_x="def test_x(): pass")
    cases = [
        (
            ["--tokenmeter-max-cost-usd=lots"],
            "ERROR: --tokenmeter-max-cost-usd: expected a dollar amount like 0.05, got 'lots'",
        ),
        (
            ["--tokenmeter-compare=x", "--tokenmeter-compare-fail=speed:10%"],
            "ERROR: bad tokenmeter compare-fail 'speed:10%': expected FIELD:LIMIT*",
        ),
        (
            ["--tokenmeter-compare-fail=tokens:10%"],
            "ERROR: --tokenmeter-compare-fail needs a baseline: add --tokenmeter-compare=NAME",
        ),
        (
            ["--tokenmeter-compare=nope"],
            "ERROR: --tokenmeter-compare: no baseline 'nope' at */.tokenmeter/nope.json "
            "(none saved yet)",
        ),
        (
            ["--tokenmeter-save=../x"],
            "ERROR: --tokenmeter-save: a baseline name is letters, digits*",
        ),
    ]
    for args, line in cases:
        result = pytester.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([line])


def test_unwritable_json_path_is_reported_not_raised(pytester: pytest.Pytester) -> None:
    """A JSON path that cannot be written gets a line in the summary; the run still passes."""
    pytester.makeini(INI)
    pytester.makepyfile(test_x="def test_x(): pass")
    pytester.makefile(".txt", blocker="a file, not a directory")
    result = pytester.runpytest("--tokenmeter-json=blocker.txt/out.json")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["tokenmeter: could not write the usage JSON to */blocker.txt/out.json: *"]
    )


def test_internal_error_is_logged_and_the_session_goes_on(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug inside the plugin's summary is logged; the run's outcome is unchanged."""
    isolate_env(monkeypatch, raise_internal_errors=False)
    pytester.makeini(INI)
    pytester.makeconftest(
        """
        import tokenmeter._pytest.tables as tables

        def broken(*args, **kwargs):
            raise RuntimeError("boom")

        tables.summary_lines = broken
        """
    )
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_subprocess("--tokenmeter")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "tokenmeter: internal error in the terminal summary: RuntimeError: boom (your tests "
            "ran normally; the plugin's numbers may be incomplete; please report this bug)",
            "*= 1 passed in *",
        ]
    )


def test_examples_suite_passes_as_documented() -> None:
    """examples/tests_with_budgets passes with the command docs/pytest-plugin.md gives."""
    out = run_python(["-m", "pytest", "examples/tests_with_budgets", "--tokenmeter"])
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "tokenmeter: usage per test; session budget max_cost_usd=$0.010000" in lines
    assert any("tokenmeter: LLM usage per test" in line for line in lines)
    total = next(line for line in lines if line.startswith("total: 4 of 5 tests"))
    assert total.split()[-5:] == ["11", "2,220", "990", "$0.000927", "0"]
    assert "5 passed" in lines[-1]


def test_fixture_name_does_not_shadow_the_module_and_the_old_name_warns(
    pytester: pytest.Pytester,
) -> None:
    """`tokenmeter_scope` leaves `import tokenmeter` usable; the old `tokenmeter` name warns."""
    pytester.makeini(INI)
    pytester.makepyfile(
        test_names="""
        import tokenmeter


        def test_new_name(tokenmeter_scope):
            tokenmeter.record(model="m", input_tokens=3, output_tokens=4, cost_usd=0.0)
            assert tokenmeter_scope.usage.total_tokens == 7


        def test_old_name(tokenmeter):
            assert tokenmeter.path == ("test_names.py::test_old_name",)
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:xdist")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "test_names.py::test_old_name",
            "*DeprecationWarning: the 'tokenmeter' fixture is deprecated and will be removed "
            "in the next release: it shadows 'import tokenmeter' inside the test; use "
            "'tokenmeter_scope' instead",
        ]
    )
    assert sum("DeprecationWarning" in line for line in result.outlines) == 1


def test_tm_report_inside_a_measured_test_shows_the_tests_usage(
    pytester: pytest.Pytester,
) -> None:
    """`tm.report()` in a measured test reports the test's meter; outside tests the default one."""
    pytester.makeini(INI)
    pytester.makepyfile(
        test_report="""
        import tokenmeter as tm


        def test_measured(tokenmeter_scope):
            tm.record(model="m", provider="acme", input_tokens=3, output_tokens=4, cost_usd=0.25)
            with tm.track("planner"):
                tm.record(model="m", provider="acme", input_tokens=10, output_tokens=20,
                          cost_usd=0.5)
            rep = tm.report()
            assert (rep.total.calls, rep.total.total_tokens, rep.total.cost_usd) == (2, 37, 0.75)
            assert rep.node("test_report.py::test_measured").self_usage.calls == 1
            assert rep.find("planner").usage.total_tokens == 30
            assert str(rep).splitlines()[0] == "tokenmeter report: 2 calls, 37 tokens, $0.750000"


        def test_unmeasured():
            tm.reset()
            tm.record(model="m", provider="acme", input_tokens=1, output_tokens=1, cost_usd=0.0)
            assert tm.report().total.calls == 1
            assert tm.report().root.children == {}
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    result.assert_outcomes(passed=2)
