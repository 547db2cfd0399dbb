"""Internal errors are logged on the tokenmeter logger and swallowed, except under our tests."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest

import tokenmeter as tm
from tokenmeter import _errors, _pricing, _report


def _boom(*_: Any, **__: Any) -> Any:
    raise RuntimeError("internal bug")


@pytest.fixture
def swallowing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Internal errors swallowed, as in a user's program."""
    monkeypatch.setattr(_errors, "RAISE_INTERNAL_ERRORS", False)


def test_report_error_is_logged_and_gives_an_empty_report(
    swallowing: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug while building a report logs on 'tokenmeter' and returns an empty report."""
    tm.record(model="m", input_tokens=1, output_tokens=1, cost_usd=0.0)
    monkeypatch.setattr(_report, "snapshot", _boom)
    with caplog.at_level(logging.ERROR, logger="tokenmeter"):
        rep = tm.report()
    assert rep.total == tm.Usage()
    assert [r.name for r in caplog.records] == ["tokenmeter"]
    assert "internal error in report" in caplog.records[0].getMessage()
    assert caplog.records[0].exc_info is not None


def test_pricing_error_leaves_the_call_unpriced(
    swallowing: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in pricing is logged; the call is still recorded, as unpriced."""
    monkeypatch.setattr(_pricing, "_litellm_price", _boom)
    with caplog.at_level(logging.ERROR, logger="tokenmeter"):
        rec = tm.record(model="gpt-4o-mini", input_tokens=10, output_tokens=5)
    assert rec.cost_usd is None
    assert tm.report().total.unpriced_calls == 1
    assert "internal error in pricing" in caplog.text


def test_internal_errors_raise_under_the_test_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    """With RAISE_INTERNAL_ERRORS (set by conftest) the same bug raises, so it shows."""
    assert _errors.RAISE_INTERNAL_ERRORS
    monkeypatch.setattr(_report, "snapshot", _boom)
    with pytest.raises(RuntimeError, match="internal bug"):
        tm.report()


def test_budget_exceeded_and_base_exceptions_pass_through(swallowing: None) -> None:
    """BudgetExceeded and non-Exception errors (KeyboardInterrupt) are never swallowed."""
    with pytest.raises(tm.BudgetExceeded), _errors.internal_errors_swallowed("x"):
        raise tm.BudgetExceeded(("a",), "max_calls", 1, 1)
    with pytest.raises(KeyboardInterrupt), _errors.internal_errors_swallowed("x"):
        raise KeyboardInterrupt


def test_swallow_decorator(swallowing: None, caplog: pytest.LogCaptureFixture) -> None:
    """@internal_errors_swallowed returns the value, or None (and a log line) on a bug."""

    @_errors.internal_errors_swallowed("decorated")
    def f(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x * 2

    assert f(2) == 4
    with caplog.at_level(logging.ERROR, logger="tokenmeter"):
        assert f(-1) is None
    assert "internal error in decorated" in caplog.text


def test_budget_exceeded_message_and_pickle() -> None:
    """BudgetExceeded names the path, limit and spend, and survives pickling."""
    exc = tm.BudgetExceeded(("agent", "planner"), "max_cost_usd", 0.02, 0.0215)
    assert str(exc) == (
        "token budget exceeded in scope 'agent/planner': max_cost_usd=$0.020000, spent $0.021500"
    )
    back = pickle.loads(pickle.dumps(exc))
    assert (back.path, back.kind, back.limit, back.spent) == (exc.path, exc.kind, 0.02, 0.0215)
    assert str(back) == str(exc)
    assert "max_tokens=10,000, spent 12,345" in str(
        tm.BudgetExceeded((), "max_tokens", 10_000, 12_345)
    )
