"""The tokenmeter pytest plugin (registered through the ``pytest11`` entry point).

Inactive unless used: a test gets its own scope when it has a ``token_budget``
marker or uses the ``tokenmeter`` fixture, and every test does once an option
asks for the session's usage (``--tokenmeter``, ``--tokenmeter-json``,
``--tokenmeter-max-*``, ``--tokenmeter-save``, ``--tokenmeter-compare``, or their
ini forms). The scopes live in one isolated `tokenmeter.Meter` per
session (per worker under xdist), so the numbers are exact whatever the code
under test does to the default meter. A test's usage travels to the session in
the teardown report's ``user_properties``, which is also how it reaches the
xdist controller. Documentation: docs/pytest-plugin.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Generator, Iterator
from contextvars import Token
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import _errors
from . import _plugin_session as ps
from ._budgets import set_limits_locked as _set_limits_locked
from ._errors import BudgetExceeded
from ._handle import Scope
from ._limits import Limits
from ._scope import enter, exit_
from ._tree import Frame, detach_child_locked

if TYPE_CHECKING:
    from ._meter import Meter

logger = logging.getLogger("tokenmeter")

_LIMIT_KINDS = ("max_calls", "max_tokens", "max_cost_usd")
_MARKER_KWARGS = frozenset({*_LIMIT_KINDS, "scope"})
_MARKER_DOC = (
    "token_budget(max_tokens=None, max_cost_usd=None, max_calls=None, scope=None): "
    "fail the test when its LLM usage, or that of the named scope inside it "
    "(scope='planner' or 'agent/planner'), goes over these limits; calls past a "
    "limit are refused while the test runs (tokenmeter)"
)


# -- state -------------------------------------------------------------------------------


class _Budget:
    """One ``token_budget`` marker, placed on the test's scope or a scope inside it."""

    __slots__ = ("limits", "node", "rel_path")

    def __init__(self, rel_path: tuple[str, ...], limits: Limits, node: Scope) -> None:
        self.rel_path = rel_path
        self.limits = limits
        self.node = node

    def who(self, nodeid: str) -> str:
        if not self.rel_path:
            return nodeid
        return f"scope {'/'.join(self.rel_path)!r} of {nodeid}"


class _TestState:
    """The scope of one running test, its budgets, and the calls they refused."""

    __slots__ = ("budgets", "data", "refused", "scope", "token")

    def __init__(self) -> None:
        self.scope: Scope | None = None
        self.token: Token[Frame | None] | None = None
        self.budgets: list[_Budget] = []
        self.refused: list[BudgetExceeded] = []
        self.data: str | None = None

    def on_exceed(self, exc: BudgetExceeded) -> None:
        """The marker budgets' policy: note the refusal, then refuse the call."""
        __tracebackhide__ = True
        self.refused.append(exc)
        raise exc


class _Session:
    """The plugin's state for one pytest session (stored in ``config.stash``)."""

    def __init__(self, config: pytest.Config, settings: ps.Settings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self._meter: Meter | None = None
        self.tests: dict[str, ps.TestUsage] = {}
        self.outcomes: dict[str, str] = {}
        self.baseline: ps.Baseline | None = None
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.internal_errors: list[str] = []

    @contextlib.contextmanager
    def guard(self, where: str) -> Iterator[None]:
        """Log and remember an internal error instead of breaking the user's test session.

        Under tokenmeter's own tests (``TOKENMETER_RAISE_INTERNAL_ERRORS``) it is raised.
        """
        try:
            yield
        except Exception as e:
            if isinstance(e, BudgetExceeded) or _errors.RAISE_INTERNAL_ERRORS:
                raise
            logger.exception(
                "tokenmeter internal error in the pytest plugin (%s); your tests ran "
                "normally, but the plugin's numbers may be incomplete. Please report this bug.",
                where,
            )
            self.internal_errors.append(f"{where}: {type(e).__name__}: {e}")

    @property
    def meter(self) -> Meter:
        if self._meter is None:
            from ._meter import Meter

            self._meter = Meter()
        return self._meter

    # -- one test ------------------------------------------------------------------

    def start(self, item: pytest.Item, force: bool = False) -> _TestState | None:
        """Open the test's scope (and set its budgets) if this test wants one."""
        markers = _marker_budgets(item)
        if not (
            force
            or markers
            or self.settings.active
            or "tokenmeter" in getattr(item, "fixturenames", ())
        ):
            return None
        state = _TestState()
        meter = self.meter
        with meter._lock:  # a rerun of the same test starts from a fresh node
            detach_child_locked(meter.root, item.nodeid)
        opened: _TestState | None = None
        with self.guard("opening the test scope"):
            test_kwargs = markers.pop((), None)
            test_limits = (
                None if test_kwargs is None else Limits(**test_kwargs, on_exceed=state.on_exceed)
            )
            state.token, scope = enter(meter, item.nodeid, None, None, None, test_limits)
            state.scope = scope
            item.stash[_ITEM] = state  # from here on, teardown closes the scope
            if test_limits is not None:
                state.budgets.append(_Budget((), test_limits, scope))
            for rel_path, kwargs in markers.items():
                limits = Limits(**kwargs, on_exceed=state.on_exceed)
                with meter._lock:
                    node = scope
                    for part in rel_path:
                        node = node._child_locked(part)
                    _set_limits_locked(node, limits)
                state.budgets.append(_Budget(rel_path, limits, node))
            opened = state
        return opened

    def check(self, item: pytest.Item, state: _TestState) -> None:
        """Fail the test (pytest.fail) if it went over a ``token_budget``."""
        problems: list[str] = []
        with self.guard("checking the test's budget"):
            for b in state.budgets:
                problems.extend(_budget_problems(item.nodeid, b, state.refused))
                if b.rel_path and not b.node.entries:
                    item.warn(
                        TokenmeterWarning(
                            f"token_budget scope {'/'.join(b.rel_path)!r} was never entered "
                            f"in {item.nodeid}; scopes entered: {_entered(state.scope)}"
                        )
                    )
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)

    def finish(self, item: pytest.Item, state: _TestState) -> None:
        """Close the test's scope and take its numbers (carried by the teardown report)."""
        if state.token is not None:
            exit_(state.token)
            state.token = None
        scope = state.scope
        if scope is None:
            return
        if self.settings.active:
            rep = scope.report()
            n = len(scope.path)
            scopes = {"/".join(node.path[n:]): node.usage for node in rep.walk() if node.path[n:]}
            data = ps.TestUsage(item.nodeid, "", rep.total, rep.by_model(), scopes)
            state.data = json.dumps(data.to_dict(), separators=(",", ":"))
        meter = self.meter
        with meter._lock:  # the numbers are taken: drop the node, so memory stays flat
            if meter.root.children.get(item.nodeid) is scope:
                detach_child_locked(meter.root, item.nodeid)

    # -- hooks of the registered session object (here and on the xdist controller) -------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect each test's usage (on the xdist controller, from the workers' reports)."""
        with self.guard("collecting a report"):
            self.collect(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Judge the session's budgets and baseline gates; write the JSON and the baseline."""
        if not self.is_worker:
            with self.guard("the end of the session"):
                self.finish_session(session)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Print the usage table, the comparison with a baseline, and the session's failures."""
        if not self.is_worker:
            with self.guard("the terminal summary"):
                self.summary(terminalreporter)
            for error in self.internal_errors:
                terminalreporter.write_line(
                    f"tokenmeter: internal error in {error} (your tests ran normally; "
                    "the plugin's numbers may be incomplete; please report this bug)",
                    yellow=True,
                )

    def collect(self, report: pytest.TestReport) -> None:
        """Note the test's outcome and, from the teardown report, its usage."""
        nodeid = report.nodeid
        if report.when == "setup":
            self.outcomes[nodeid] = (
                "error" if report.failed else "skipped" if report.skipped else "passed"
            )
        elif report.when == "call":
            if hasattr(report, "wasxfail"):
                self.outcomes[nodeid] = "xfailed" if report.skipped else "xpassed"
            else:
                self.outcomes[nodeid] = report.outcome
        elif report.failed:
            self.outcomes[nodeid] = "error"
        for name, value in report.user_properties:
            if name == ps.PROPERTY and isinstance(value, str):
                data = json.loads(value)
                data["outcome"] = self.outcomes.get(nodeid, "")
                self.tests[nodeid] = ps.TestUsage.from_dict(nodeid, data)

    # -- the end of the session ----------------------------------------------------------

    def finish_session(self, session: pytest.Session) -> None:
        """Judge the session budget and the baseline gates; write the JSON and the baseline."""
        s = self.settings
        total = ps.sum_usage(t.usage for t in self.tests.values())
        for kind, limit in s.session_limits.items():
            if ps.over(kind, limit, total):
                self.failures.append(
                    f"the session {ps.spent_phrase(kind, total)}, "
                    f"over its budget {kind}={ps.fmt_value(kind, limit)}"
                )
        if self.baseline is not None and s.compare_fail:
            for msg in ps.compare_failures(self.baseline, self.tests, s.compare_fail):
                self.failures.append(f"regression against baseline {self.baseline.name!r}: {msg}")
        if self.failures and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        rootdir = self.config.rootpath
        if s.json_path is None and s.save is None:
            return
        doc = ps.session_document(self.tests, rootdir, self.failures, s.session_limits)
        outputs = []
        if s.json_path is not None:
            outputs.append(("usage JSON", self.config.invocation_params.dir / s.json_path))
        if s.save is not None:
            outputs.append((f"baseline {s.save!r}", ps.baseline_path(rootdir / s.storage, s.save)))
        for what, path in outputs:
            try:
                ps.write_json(path, doc)
            except OSError as e:
                self.notes.append(f"could not write the {what} to {path}: {e}")
            else:
                self.notes.append(f"{what} written to {path}")

    def summary(self, tr: pytest.TerminalReporter) -> None:
        """The terminal summary: the table, the comparison, the session's failures."""
        s = self.settings
        width = tr._tw.fullwidth
        if s.summary:
            tr.write_sep("-", "tokenmeter: LLM usage per test")
            for line in ps.summary_lines(self.tests, width):
                tr.write_line(line)
        if self.baseline is not None:
            tr.write_sep("-", f"tokenmeter: change against baseline {self.baseline.label}")
            for line in ps.compare_lines(self.baseline, self.tests, width):
                tr.write_line(line)
        for note in self.notes:
            tr.write_line(f"tokenmeter: {note}")
        for failure in self.failures:
            tr.write_line(f"tokenmeter: FAILED: {failure}", red=True, bold=True)


class TokenmeterWarning(pytest.PytestWarning):
    """A tokenmeter plugin warning (for example a budget on a scope that never ran)."""


_SESSION = pytest.StashKey[_Session]()
_ITEM = pytest.StashKey[_TestState]()


def _session(config: pytest.Config) -> _Session | None:
    return config.stash.get(_SESSION, None)


# -- markers -----------------------------------------------------------------------------


def _marker_budgets(item: pytest.Item) -> dict[tuple[str, ...], dict[str, Any]]:
    """The ``token_budget`` markers of a test by scope path (the closest marker wins)."""
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for mark in item.iter_markers("token_budget"):
        where = f"@pytest.mark.token_budget on {item.nodeid}"
        if mark.args:
            pytest.fail(f"{where}: takes keyword arguments only, got {mark.args!r}", pytrace=False)
        unknown = sorted(set(mark.kwargs) - _MARKER_KWARGS)
        if unknown:
            pytest.fail(
                f"{where}: unknown argument(s) {', '.join(unknown)}; expected "
                "max_tokens, max_cost_usd, max_calls, scope",
                pytrace=False,
            )
        scope = mark.kwargs.get("scope")
        if scope is None:
            rel: tuple[str, ...] = ()
        elif isinstance(scope, str) and scope.strip("/"):
            rel = tuple(p for p in scope.split("/") if p)
        else:
            pytest.fail(
                f"{where}: scope must be a scope name or path, got {scope!r}", pytrace=False
            )
        limits = {k: mark.kwargs[k] for k in _LIMIT_KINDS if mark.kwargs.get(k) is not None}
        if not limits:
            pytest.fail(
                f"{where}: give at least one of max_tokens, max_cost_usd, max_calls",
                pytrace=False,
            )
        try:
            Limits(**limits)
            error = None
        except ValueError as e:
            error = str(e)
        if error is not None:
            pytest.fail(f"{where}: {error}", pytrace=False)
        out.setdefault(rel, limits)
    return out


def _budget_problems(nodeid: str, b: _Budget, refused: list[BudgetExceeded]) -> list[str]:
    usage = b.node.usage
    problems: list[str] = []
    for kind in _LIMIT_KINDS:
        limit = getattr(b.limits, kind)
        if limit is None:
            continue
        n_refused = sum(1 for e in refused if e.path == b.node.path and e.kind == kind)
        limit_text = f"{kind}={ps.fmt_value(kind, limit)}"
        if ps.over(kind, limit, usage):
            problems.append(
                f"token_budget exceeded: {b.who(nodeid)} {ps.spent_phrase(kind, usage)}, "
                f"over {limit_text}"
            )
        elif n_refused:
            problems.append(
                f"token_budget exceeded: {b.who(nodeid)} reached {limit_text} "
                f"({ps.spent_phrase(kind, usage)}) and {n_refused} more "
                f"call{' was' if n_refused == 1 else 's were'} refused"
            )
    return problems


def _entered(scope: Scope | None) -> str:
    if scope is None:
        return "none"
    names = [
        "/".join(s.path[len(scope.path) :]) for s in scope.walk() if s.entries and s is not scope
    ]
    return ", ".join(repr(n) for n in names) or "none"


# -- options -----------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``--tokenmeter*`` options and their ini forms."""
    group = parser.getgroup("tokenmeter", "tokenmeter: LLM tokens and cost per test")
    group.addoption(
        "--tokenmeter",
        action="store_true",
        default=None,
        help="print a table of LLM calls, tokens and cost per test after the run "
        "(ini: tokenmeter = true)",
    )
    group.addoption(
        "--tokenmeter-json",
        metavar="PATH",
        default=None,
        help="write every test's LLM usage as JSON to PATH (ini: tokenmeter_json)",
    )
    group.addoption(
        "--tokenmeter-max-cost-usd",
        metavar="USD",
        default=None,
        help="fail the run when the whole session costs more than USD "
        "(ini: tokenmeter_max_cost_usd)",
    )
    group.addoption(
        "--tokenmeter-max-tokens",
        metavar="N",
        default=None,
        help="fail the run when the whole session uses more than N tokens "
        "(ini: tokenmeter_max_tokens)",
    )
    group.addoption(
        "--tokenmeter-max-calls",
        metavar="N",
        default=None,
        help="fail the run when the whole session makes more than N LLM calls "
        "(ini: tokenmeter_max_calls)",
    )
    group.addoption(
        "--tokenmeter-save",
        metavar="NAME",
        default=None,
        help="save this run's per-test usage as baseline NAME under the storage directory",
    )
    group.addoption(
        "--tokenmeter-compare",
        metavar="NAME",
        nargs="?",
        const="",
        default=None,
        help="show each test's change against baseline NAME (the latest saved when "
        "NAME is left out, or a .json file) (ini: tokenmeter_compare)",
    )
    group.addoption(
        "--tokenmeter-compare-fail",
        metavar="FIELD:LIMIT",
        action="append",
        default=None,
        help="with --tokenmeter-compare, fail the run when a test's tokens, cost or calls "
        "grew past LIMIT: tokens:10%%, cost:5%%, calls:0, cost:0.01; repeatable "
        "(ini: tokenmeter_compare_fail)",
    )
    group.addoption(
        "--tokenmeter-storage",
        metavar="DIR",
        default=None,
        help=f"where baselines are kept, relative to the rootdir (default: {ps.DEFAULT_STORAGE}) "
        "(ini: tokenmeter_storage)",
    )
    parser.addini("tokenmeter", "print the per-test LLM usage table", type="bool", default=False)
    parser.addini("tokenmeter_json", "write per-test LLM usage as JSON to this path", default="")
    parser.addini("tokenmeter_max_cost_usd", "session budget in USD", default="")
    parser.addini("tokenmeter_max_tokens", "session budget in tokens", default="")
    parser.addini("tokenmeter_max_calls", "session budget in LLM calls", default="")
    parser.addini("tokenmeter_compare", "baseline to compare each run with", default="")
    parser.addini(
        "tokenmeter_compare_fail",
        "regression gates (FIELD:LIMIT, one per line)",
        type="linelist",
        default=[],
    )
    parser.addini("tokenmeter_storage", "directory for baselines", default=ps.DEFAULT_STORAGE)


def _settings(config: pytest.Config) -> ps.Settings:
    """Resolve the options: command line, then ini, then the default."""

    def pick(option: str, ini: str) -> Any:
        value = config.getoption(option)
        if value is not None:
            return value
        value = config.getini(ini)
        return value if value not in ("", []) else None

    summary = pick("tokenmeter", "tokenmeter")
    json_path = pick("tokenmeter_json", "tokenmeter_json")
    max_cost = pick("tokenmeter_max_cost_usd", "tokenmeter_max_cost_usd")
    max_tokens = pick("tokenmeter_max_tokens", "tokenmeter_max_tokens")
    max_calls = pick("tokenmeter_max_calls", "tokenmeter_max_calls")
    save = config.getoption("tokenmeter_save")
    compare = config.getoption("tokenmeter_compare")
    if compare is None:
        compare = config.getini("tokenmeter_compare") or None
    gates = pick("tokenmeter_compare_fail", "tokenmeter_compare_fail") or []
    storage = pick("tokenmeter_storage", "tokenmeter_storage") or ps.DEFAULT_STORAGE
    tolerances = tuple(ps.Tolerance.parse(g) for g in gates)
    if tolerances and compare is None:
        raise ps.SettingsError(
            "--tokenmeter-compare-fail needs a baseline: add --tokenmeter-compare=NAME"
        )
    return ps.Settings(
        summary=bool(summary),
        json_path=Path(json_path) if json_path else None,
        max_cost_usd=None
        if max_cost is None
        else ps.parse_usd("--tokenmeter-max-cost-usd", str(max_cost)),
        max_tokens=None
        if max_tokens is None
        else ps.parse_int("--tokenmeter-max-tokens", str(max_tokens)),
        max_calls=None
        if max_calls is None
        else ps.parse_int("--tokenmeter-max-calls", str(max_calls)),
        save=None if save is None else ps.check_name(save),
        compare=compare,
        compare_fail=tolerances,
        storage=Path(storage),
    )


# -- hooks -------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and set up the session's state from the options."""
    config.addinivalue_line("markers", _MARKER_DOC)
    try:
        settings = _settings(config)
        session = _Session(config, settings)
        if settings.compare is not None and not session.is_worker:
            session.baseline = ps.load_baseline(
                config.rootpath / settings.storage, settings.compare
            )
    except ps.SettingsError as e:
        raise pytest.UsageError(str(e)) from None
    config.stash[_SESSION] = session
    if settings.active:
        config.pluginmanager.register(session, "tokenmeter-session")


def pytest_report_header(config: pytest.Config) -> str | None:
    """One header line when the plugin collects the session's usage."""
    session = _session(config)
    if session is None or not session.settings.active:
        return None
    s = session.settings
    bits = ["usage per test"]
    if s.session_limits:
        bits.append(
            "session budget "
            + ", ".join(f"{k}={ps.fmt_value(k, v)}" for k, v in s.session_limits.items())
        )
    if session.baseline is not None:
        bits.append(f"comparing with {session.baseline.label}")
    return "tokenmeter: " + "; ".join(bits)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Open the test's scope before its fixtures run."""
    session = _session(item.config)
    if session is not None:
        session.start(item)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """After the test body: fail it if it went over its ``token_budget``."""
    result = yield
    state = item.stash.get(_ITEM, None)
    session = _session(item.config)
    if state is not None and state.budgets and session is not None:
        session.check(item, state)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """Close the test's scope once its fixtures are torn down."""
    try:
        return (yield)
    finally:
        state = item.stash.get(_ITEM, None)
        session = _session(item.config)
        if state is not None and session is not None:
            with session.guard("closing the test scope"):
                session.finish(item, state)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the test's usage to its teardown report (it travels with it under xdist)."""
    report = yield
    if call.when == "teardown":
        state = item.stash.get(_ITEM, None)
        if state is not None and state.data is not None:
            report.user_properties.append((ps.PROPERTY, state.data))
    return report


@pytest.fixture(name="tokenmeter")
def _tokenmeter_fixture(request: pytest.FixtureRequest) -> Scope:
    """The scope of the running test: ``tokenmeter.usage``, ``tokenmeter.report()``."""
    node: pytest.Item = request.node
    state = node.stash.get(_ITEM, None)
    if state is None or state.scope is None:
        session = _session(request.config)
        if session is not None:
            state = session.start(node, force=True)
    if state is None or state.scope is None:
        pytest.fail("tokenmeter: the test scope could not be opened (see the log)", pytrace=False)
    return state.scope
