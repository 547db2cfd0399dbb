"""The plugin proper: pytest hooks that give each test its scope, budgets and usage.

Registered by the light entry module (``pytest_tokenmeter``) only once the run uses
tokenmeter. Each measured test gets a fresh, isolated `tokenmeter.Meter` whose one
top scope is named after the test id, so the numbers are exact whatever the code
under test does to the default meter, and a rerun starts from zero. The run's
collection, files and summary are `RunSession`'s.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest

from tokenmeter import BudgetExceeded, Meter

from ._core import set_budget
from .budgets import Budget, MarkerError, entered, marker_budgets
from .results import PROPERTY, TestUsage
from .session import RunSession
from .settings import SettingsError, from_config

if TYPE_CHECKING:
    from tokenmeter import Scope, Track


class TokenmeterWarning(pytest.PytestWarning):
    """A tokenmeter plugin warning (for example a budget on a scope that never ran)."""


class TestState:
    """The scope of one running test, its budgets, and the calls they refused."""

    __test__ = False
    __slots__ = ("budgets", "data", "refused", "scope", "track")

    def __init__(self) -> None:
        self.track: Track | None = None
        self.scope: Scope | None = None
        self.budgets: list[Budget] = []
        self.refused: list[BudgetExceeded] = []
        self.data: str | None = None

    def on_exceed(self, exc: BudgetExceeded) -> None:
        """The marker budgets' policy: note the refusal, then refuse the call."""
        __tracebackhide__ = True
        self.refused.append(exc)
        raise exc


_ITEM = pytest.StashKey[TestState]()


class Plugin:
    """The hooks of an activated plugin, and the fixture's scope."""

    def __init__(self, config: pytest.Config, session: RunSession) -> None:
        self.config = config
        self.session = session

    @classmethod
    def create(cls, config: pytest.Config) -> Plugin:
        """Read the settings (a bad value is a usage error naming it) and load a baseline."""
        try:
            session = RunSession(config, from_config(config))
        except SettingsError as e:
            raise pytest.UsageError(str(e)) from None
        return cls(config, session)

    @property
    def active(self) -> bool:
        """Whether every test is measured and the run's usage collected."""
        return self.session.settings.active

    # -- one test ------------------------------------------------------------------

    def start(self, item: pytest.Item, force: bool = False) -> TestState | None:
        """Open the test's scope (and set its budgets) if this test wants one."""
        from pytest_tokenmeter import uses_tokenmeter

        try:
            markers = marker_budgets(item)
        except MarkerError as e:
            pytest.fail(str(e), pytrace=False)
        if not (force or markers or self.active or uses_tokenmeter(item)):
            return None
        state = TestState()
        opened: TestState | None = None
        with self.session.guard("opening the test scope"):
            from tokenmeter._limits import Limits  # attrs, loaded on first use

            test_kwargs = markers.pop((), None) or {}
            track = Meter().track(item.nodeid, on_exceed=state.on_exceed, **test_kwargs)
            state.scope = track.__enter__()
            state.track = track
            item.stash[_ITEM] = state  # from here on, teardown closes the scope
            if test_kwargs:
                state.budgets.append(Budget((), Limits(**test_kwargs), state.scope))
            for rel_path, kwargs in markers.items():
                limits = Limits(**kwargs, on_exceed=state.on_exceed)
                node = set_budget(state.scope, rel_path, limits)
                state.budgets.append(Budget(rel_path, limits, node))
            opened = state
        return opened

    def check(self, item: pytest.Item, state: TestState) -> None:
        """Fail the test (pytest.fail) if it went over a ``token_budget``."""
        problems: list[str] = []
        with self.session.guard("checking the test's budget"):
            for b in state.budgets:
                problems.extend(b.problems(item.nodeid, state.refused))
                if b.rel_path and not b.node.entries:
                    item.warn(
                        TokenmeterWarning(
                            f"token_budget scope {'/'.join(b.rel_path)!r} was never entered "
                            f"in {item.nodeid}; scopes entered: {entered(state.scope)}"
                        )
                    )
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)

    def finish(self, item: pytest.Item, state: TestState) -> None:
        """Close the test's scope and take its numbers (carried by the teardown report)."""
        track, state.track = state.track, None
        if track is not None:
            track.__exit__(None, None, None)
        if state.scope is not None and self.active:
            state.data = TestUsage.of_scope(item.nodeid, state.scope).to_property()

    def test_scope(self, item: pytest.Item) -> Scope:
        """The scope of the running test (opened now if the test asked for it late)."""
        state = item.stash.get(_ITEM, None)
        if state is None or state.scope is None:
            state = self.start(item, force=True)
        if state is None or state.scope is None:
            pytest.fail(
                "tokenmeter: the test scope could not be opened (see the log)", pytrace=False
            )
        return state.scope

    # -- hooks -----------------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        """One header line when the plugin collects the session's usage."""
        return self.session.header()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Open the test's scope before its fixtures run."""
        self.start(item)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        """After the test body: fail it if it went over its ``token_budget``."""
        result = yield
        state = item.stash.get(_ITEM, None)
        if state is not None and state.budgets:
            self.check(item, state)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        """Close the test's scope once its fixtures are torn down."""
        try:
            return (yield)
        finally:
            state = item.stash.get(_ITEM, None)
            if state is not None:
                with self.session.guard("closing the test scope"):
                    self.finish(item, state)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Attach the test's usage to its teardown report (it travels with it under xdist)."""
        report = yield
        if call.when == "teardown":
            state = item.stash.get(_ITEM, None)
            if state is not None and state.data is not None:
                report.user_properties.append((PROPERTY, state.data))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect each test's usage (on the xdist controller, from the workers' reports)."""
        if self.active:
            with self.session.guard("collecting a report"):
                self.session.collect(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Judge the session's budgets and baseline gates; write the JSON and the baseline."""
        if self.active and not self.session.is_worker:
            with self.session.guard("the end of the session"):
                self.session.finish(session)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Print the usage table, the comparison with a baseline, and the session's failures."""
        if self.session.is_worker:
            return
        if self.active:
            with self.session.guard("the terminal summary"):
                self.session.summary(terminalreporter)
        for line in self.session.internal_error_lines():
            terminalreporter.write_line(line, yellow=True)
