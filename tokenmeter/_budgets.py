"""Budgets: setting a node's limits, and refusing a call once a limit on its path is reached.

A budget belongs to a node, not to one entry: it counts the node's inclusive usage
over all its entries (its tally, kept by ``_tree.add``) and the calls started under
it (a slot reserved before each call starts), both read through ``_tree.budget_tally``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._acc import CALLS, COST, INPUT, OUTPUT, cost_to_units, units_to_cost
from ._drain import drain_queued
from ._errors import BudgetExceeded
from ._tree import (
    budget_tally,
    budgets_set_since,
    set_budget_tally_locked,
    settle_locked,
    start_calls_locked,
    subtree_acc_locked,
    tree_lock,
    update_budgets_locked,
)

if TYPE_CHECKING:
    from ._frame import Frame
    from ._limits import Limits, OnExceed
    from ._tree import Node

logger = logging.getLogger("tokenmeter")


def set_limits_locked(scope: Node, limits: Limits) -> None:
    """Set (or replace) ``scope``'s budget; the caller holds the tree's lock.

    It counts the node's inclusive usage over all its entries, including what was
    recorded before it was first set. Entering the node again with limits replaces
    them; entering it without keeps them.
    """
    had = scope.limits is not None
    scope.limits = limits
    if not had:
        update_budgets_locked(scope)
    if budget_tally(scope)[0] is None:
        settle_locked(scope.meter)
        incl = subtree_acc_locked(scope)
        set_budget_tally_locked(scope, incl, incl[CALLS])


def _exceeded_on_path_locked(frame: Frame) -> list[tuple[Node, BudgetExceeded]]:
    """Every budget on ``frame``'s path already reached, outermost first."""
    found: list[tuple[Node, BudgetExceeded]] = []
    for s in frame.budgets:
        exc = _exceeded(s)
        if exc is not None:
            found.append((s, exc))
    return found


def _policy(s: Node) -> OnExceed:
    return "raise" if s.limits is None else s.limits.on_exceed


def _exceeded(s: Node) -> BudgetExceeded | None:
    lim = s.limits
    incl, started = budget_tally(s)
    if lim is None or incl is None:
        return None
    exc: BudgetExceeded | None = None
    if lim.max_calls is not None and started >= lim.max_calls:
        exc = BudgetExceeded(s.path, "max_calls", lim.max_calls, started)
    elif lim.max_tokens is not None and incl[INPUT] + incl[OUTPUT] >= lim.max_tokens:
        exc = BudgetExceeded(s.path, "max_tokens", lim.max_tokens, incl[INPUT] + incl[OUTPUT])
    elif lim.max_cost_usd is not None and incl[COST] >= cost_to_units(lim.max_cost_usd):
        exc = BudgetExceeded(s.path, "max_cost_usd", lim.max_cost_usd, units_to_cost(incl[COST]))
    if exc is not None:
        exc.scope = s  # type: ignore[attr-defined]
    return exc


def before_call(frame: Frame | None) -> None:
    """Refuse the next call (raise BudgetExceeded) if a budget on the path is reached.

    Called before an LLM call starts. Checking and reserving the call's slot is
    one step under the tree's lock, so ``max_calls`` is exact under concurrency.
    A budget with ``on_exceed="raise"`` refuses the call. Otherwise every reached
    budget is acted on, outermost first: ``"warn"`` logs a warning, a callable is
    called with the exception; the call then goes ahead, unless a callable
    raises, which refuses the call (its slot is given back) with that exception.
    """
    if frame is None or not frame.budgets:
        return
    __tracebackhide__ = True  # pytest: show the user's call, not this frame
    drain_queued()  # an abandoned stream's usage counts before the next call is let through
    lock = tree_lock(frame.scope.meter)
    with lock:
        found = _exceeded_on_path_locked(frame)
        refused = next((exc for s, exc in found if _policy(s) == "raise"), None)
        if refused is None:
            start_calls_locked(frame.budgets, 1)
    if not found:
        return
    if refused is not None:
        raise refused
    try:
        for s, exc in found:
            on_exceed = _policy(s)
            if on_exceed == "warn":
                logger.warning("%s (on_exceed='warn': the call goes ahead)", exc)
            elif callable(on_exceed):
                on_exceed(exc)
    except BaseException:
        with lock:
            start_calls_locked(frame.budgets, -1)
        raise


def count_unchecked_start(frame: Frame, started: float) -> None:
    """Count a call ending now as started under the budgets set while it ran.

    It started (at ``started``, a ``time.perf_counter()``) before they existed, so it
    was never checked against them and no slot was reserved for it there; it counts
    against their ``max_calls`` once it ends (docs/budgets.md).
    """
    late = budgets_set_since(frame.budgets, started)
    if late:
        with tree_lock(frame.scope.meter):
            start_calls_locked(late, 1)
