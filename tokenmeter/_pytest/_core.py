"""The pytest plugin's whole interface to tokenmeter's internals: three names, no more.

Everything else in `tokenmeter._pytest` uses tokenmeter's public API (``Meter``,
``Meter.track``, ``Scope``, ``Report``, ``Usage``, ``Limits``, ``BudgetExceeded``).
What the public API cannot do is here, so a change of the core shows up in one file:

- `set_budget`: give a scope inside a test a budget before the test enters it
  (``@pytest.mark.token_budget(scope="agent/planner", ...)``), without counting an entry;
- `cost_to_units`: the exact integer form of a dollar amount, as budgets compare it;
- `raise_internal_errors`: whether tokenmeter's own test suite asked for internal
  errors to be raised rather than logged (``TOKENMETER_RAISE_INTERNAL_ERRORS``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenmeter import _errors
from tokenmeter._acc import cost_to_units
from tokenmeter._budgets import set_limits_locked
from tokenmeter._tree import child_locked, tree_lock

if TYPE_CHECKING:
    from tokenmeter import Limits, Scope


def set_budget(scope: Scope, rel_path: tuple[str, ...], limits: Limits) -> Scope:
    """Set ``limits`` on the node at ``rel_path`` under ``scope`` (made if missing, not entered).

    The budget then holds for every later entry of that node, as if the code had
    entered it with ``track(name, max_...=...)``; its ``entries`` stay 0 until it is.
    """
    with tree_lock(scope.meter):
        node = scope
        for part in rel_path:
            node = child_locked(node, part)
        set_limits_locked(node, limits)
    return node


def raise_internal_errors() -> bool:
    """Whether internal errors are raised (tokenmeter's own tests), not logged and swallowed."""
    return bool(_errors.RAISE_INTERNAL_ERRORS)


__all__ = ["cost_to_units", "raise_internal_errors", "set_budget"]
