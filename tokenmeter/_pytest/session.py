"""The run as a whole: every test's usage, the session budget, baselines, files and the summary.

One `RunSession` per pytest run (on pytest-xdist's controller too, which gets each
test's usage from the workers' teardown reports). Only the end of the run lives here;
the per-test scopes and budgets are `tokenmeter._pytest.plugin`'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tokenmeter import BudgetExceeded

from . import baselines, tables
from ._core import raise_internal_errors
from .budgets import fmt_value, session_problems
from .results import PROPERTY, TestUsage, sum_usage
from .settings import Settings

if TYPE_CHECKING:
    import pytest

logger = logging.getLogger("tokenmeter")


class RunSession:
    """What the plugin knows of the run: settings, per-test usage, outcomes and failures."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self.tests: dict[str, TestUsage] = {}
        self.outcomes: dict[str, str] = {}
        self.baseline: baselines.Baseline | None = None
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.internal_errors: list[str] = []
        if settings.compare is not None and not self.is_worker:
            self.baseline = baselines.load_baseline(
                config.rootpath / settings.storage, settings.compare
            )

    @contextlib.contextmanager
    def guard(self, where: str) -> Iterator[None]:
        """Log and remember an internal error instead of breaking the user's test session.

        Under tokenmeter's own tests (``TOKENMETER_RAISE_INTERNAL_ERRORS``) it is raised.
        """
        try:
            yield
        except Exception as e:
            if isinstance(e, BudgetExceeded) or raise_internal_errors():
                raise
            logger.exception(
                "tokenmeter internal error in the pytest plugin (%s); your tests ran "
                "normally, but the plugin's numbers may be incomplete. Please report this bug.",
                where,
            )
            self.internal_errors.append(f"{where}: {type(e).__name__}: {e}")

    def header(self) -> str | None:
        """The line under pytest's header, when the run's usage is collected."""
        s = self.settings
        if not s.active:
            return None
        bits = ["usage per test"]
        if s.session_limits:
            bits.append(
                "session budget "
                + ", ".join(f"{k}={fmt_value(k, v)}" for k, v in s.session_limits.items())
            )
        if self.baseline is not None:
            bits.append(f"comparing with {self.baseline.label}")
        return "tokenmeter: " + "; ".join(bits)

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
            if name == PROPERTY and isinstance(value, str):
                data = json.loads(value)
                data["outcome"] = self.outcomes.get(nodeid, "")
                self.tests[nodeid] = TestUsage.from_dict(nodeid, data)

    def finish(self, session: pytest.Session) -> None:
        """Judge the session budget and the baseline gates; write the JSON and the baseline."""
        import pytest

        s = self.settings
        total = sum_usage(t.usage for t in self.tests.values())
        self.failures.extend(session_problems(s.session_limits, total))
        if self.baseline is not None and s.compare_fail:
            for msg in baselines.compare_failures(self.baseline, self.tests, s.compare_fail):
                self.failures.append(f"regression against baseline {self.baseline.name!r}: {msg}")
        if self.failures and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if s.json_path is None and s.save is None:
            return
        rootdir = self.config.rootpath
        doc = baselines.session_document(self.tests, rootdir, self.failures, s.session_limits)
        outputs = []
        if s.json_path is not None:
            outputs.append(("usage JSON", self.config.invocation_params.dir / s.json_path))
        if s.save is not None:
            path = baselines.baseline_path(rootdir / s.storage, s.save)
            outputs.append((f"baseline {s.save!r}", path))
        for what, path in outputs:
            try:
                baselines.write_json(path, doc)
            except (OSError, ValueError) as e:
                self.notes.append(f"could not write the {what} to {path}: {e}")
            else:
                self.notes.append(f"{what} written to {path}")

    def summary(self, tr: pytest.TerminalReporter) -> None:
        """The terminal summary: the table, the comparison, the session's failures."""
        s = self.settings
        width = tr.config.get_terminal_writer().fullwidth
        if s.summary:
            tr.write_sep("-", "tokenmeter: LLM usage per test")
            for line in tables.summary_lines(self.tests, width):
                tr.write_line(line)
        if self.baseline is not None:
            tr.write_sep("-", f"tokenmeter: change against baseline {self.baseline.label}")
            for line in tables.compare_lines(self.baseline, self.tests, width):
                tr.write_line(line)
        for note in self.notes:
            tr.write_line(f"tokenmeter: {note}")
        for failure in self.failures:
            tr.write_line(f"tokenmeter: FAILED: {failure}", red=True, bold=True)

    def internal_error_lines(self) -> list[str]:
        """One line per internal error of the plugin, for the end of the summary."""
        return [
            f"tokenmeter: internal error in {error} (your tests ran normally; "
            "the plugin's numbers may be incomplete; please report this bug)"
            for error in self.internal_errors
        ]
