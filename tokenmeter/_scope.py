"""The scope engine: one ContextVar holding an immutable frame, and the nodes of the call tree."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from . import _errors, _events
from ._acc import ACC_SIZE, CALLS, COST, INPUT, OUTPUT, add_acc, cost_to_units, units_to_cost
from ._errors import BudgetExceeded

if TYPE_CHECKING:
    from ._limits import Limits
    from ._meter import Meter
    from ._report import Report
    from ._usage import Usage

logger = logging.getLogger("tokenmeter")

#: What a budget does once reached: raise, log a warning, or call a function.
OnExceed = Literal["raise", "warn"] | Callable[[BudgetExceeded], None]

_EMPTY_ATTRS: Mapping[str, Any] = MappingProxyType({})

#: A dimension key of the per-node breakdown: (model, provider, module, operation).
DimKey = tuple[str, str | None, str | None, str | None]


class Scope:
    """A node of a meter's call tree, and the handle ``track()`` gives back.

    Entering ``track(name)`` under a scope reuses its child of that name, so a
    loop of ``with track("sample")`` makes one node whose ``entries`` counts the
    loop's turns. ``usage`` is live and inclusive (the scope and everything below).
    """

    __slots__ = (
        "__weakref__",
        "_dims",
        "_fast",
        "_incl",
        "_started",
        "children",
        "entries",
        "limits",
        "meter",
        "name",
        "parent",
        "path",
    )

    def __init__(self, name: str, parent: Scope | None, meter: Meter) -> None:
        self.name = name
        self.parent = parent
        self.meter = meter
        self.path: tuple[str, ...] = () if parent is None else (*parent.path, name)
        self.children: dict[str, Scope] = {}
        self.entries = 0
        self.limits: Limits | None = None
        # Own usage, split by dimension key: {(model, provider, module, operation): acc}.
        self._dims: dict[DimKey, list[int]] = {}
        # The same accumulators keyed as LiteLLM names a call's model and provider
        # (before `_litellm._model_provider` normalises them), as (id, accumulator):
        # LiteLLM attribution finds its tally with one lookup. Accumulators are never
        # replaced (a reset zeroes them in place), so an entry here stays valid.
        self._fast: dict[tuple[Any, Any, str | None, str | None], tuple[int, list[int]]] = {}
        # Inclusive tally and started-call count, kept only while the scope has a budget.
        self._incl: list[int] | None = None
        self._started = 0

    def __repr__(self) -> str:
        return f"<tokenmeter.Scope {'/'.join(self.path) or '<root>'!r} entries={self.entries}>"

    @property
    def usage(self) -> Usage:
        """Inclusive usage of this scope and its subtree, as of now."""
        from ._usage import Usage  # attrs, loaded on first use

        with self.meter._lock:
            self.meter._settle_locked()
            acc = self._subtree_acc_locked()
        return Usage._from_acc(acc)

    @property
    def self_usage(self) -> Usage:
        """Usage recorded on this scope itself, children excluded."""
        from ._usage import Usage  # attrs, loaded on first use

        with self.meter._lock:
            self.meter._settle_locked()
            acc = self._own_acc_locked()
        return Usage._from_acc(acc)

    def report(self) -> Report:
        """A consistent snapshot report of this scope's subtree."""
        return self.meter._report(self)

    def reset(self) -> None:
        """Zero the usage, entries and budgets of this scope and its subtree (nodes stay valid)."""
        self.meter._reset_subtree(self)

    def walk(self) -> Iterator[Scope]:
        """This scope and its descendants, depth first."""
        yield self
        for child in list(self.children.values()):
            yield from child.walk()

    # -- internals; the caller holds the meter's lock -------------------------------

    def _own_acc_locked(self) -> list[int]:
        acc = [0] * ACC_SIZE
        for d in self._dims.values():
            add_acc(acc, d)
        return acc

    def _subtree_acc_locked(self) -> list[int]:
        acc = self._own_acc_locked()
        for child in self.children.values():
            add_acc(acc, child._subtree_acc_locked())
        return acc

    def _child_locked(self, name: str) -> Scope:
        child = self.children.get(name)
        if child is None:
            child = Scope(name, self, self.meter)
            self.children[name] = child
        return child


class Frame:
    """The immutable value of the scope ContextVar: where usage lands right now.

    Never mutated after creation; entering a scope makes a new frame.
    """

    __slots__ = ("attributes", "budgets", "module", "operation", "prev", "scope")

    def __init__(
        self,
        scope: Scope,
        module: str | None,
        operation: str | None,
        attributes: Mapping[str, Any],
        budgets: tuple[Scope, ...],
        prev: Frame | None,
    ) -> None:
        self.scope = scope
        self.module = module
        self.operation = operation
        self.attributes = attributes
        self.budgets = budgets
        self.prev = prev


#: The one ContextVar: the current frame, or None outside any scope.
CURRENT: ContextVar[Frame | None] = ContextVar("tokenmeter_frame", default=None)

#: Set while an instrumented asynchronous LLM call is in progress: that call's
#: state (see ``_litellm.CallState``). LiteLLM's own retries, fallbacks and Router
#: attempts inside the call see it and are not recorded again. It travels with
#: the frame into tasks and, through ``_threads``, into threads started meanwhile.
IN_CALL: ContextVar[Any] = ContextVar("tokenmeter_call", default=None)


class _ThreadCall(threading.local):
    call: Any = None


#: The same for a synchronous call, which holds its thread until it returns: a
#: thread-local is set and cleared at a third of a ContextVar's cost. Threads the
#: call starts get it as ``IN_CALL`` (see `call_in_progress`).
THREAD_CALL = _ThreadCall()


def call_in_progress() -> Any:
    """The state of the instrumented call in progress here, or None."""
    return IN_CALL.get() or THREAD_CALL.call


#: The default meter, once ``enter`` has looked it up: an import statement inside
#: ``enter`` would cost more than the rest of entering a scope (``_meter`` imports us).
_default_meter: Meter | None = None


def _load_default_meter() -> Meter:
    global _default_meter
    from ._meter import DEFAULT_METER

    _default_meter = DEFAULT_METER
    return DEFAULT_METER


def enter(
    meter: Meter | None,
    name: str,
    module: str | None,
    operation: str | None,
    attributes: Mapping[str, Any] | None,
    limits: Limits | None,
) -> tuple[Token[Frame | None], Scope]:
    """Enter scope ``name`` under the current one; returns the reset token and the scope.

    ``meter`` None means the meter of the current scope (the default one outside scopes).
    """
    prev = cur = CURRENT.get()
    if cur is None:
        if meter is None:
            meter = _default_meter or _load_default_meter()
        prev = cur = meter._root_frame
    elif meter is not None and cur.scope.meter is not meter:
        # Nest under this meter's nearest open scope, but keep the whole chain in
        # ``prev`` so other meters still find theirs (``Meter._frame_under``).
        cur = meter._frame_under(cur)
    parent = cur.scope
    lock = parent.meter._lock
    with lock:
        scope = parent.children.get(name)
        if scope is None:
            scope = parent._child_locked(name)
        scope.entries += 1
        if limits is not None:
            _set_limits_locked(scope, limits)
    budgets = cur.budgets if scope.limits is None else (*cur.budgets, scope)
    frame = Frame(
        scope,
        module if module is not None else cur.module,
        operation if operation is not None else cur.operation,
        {**cur.attributes, **attributes} if attributes else cur.attributes,
        budgets,
        prev,
    )
    token = CURRENT.set(frame)
    if _events.OBSERVERS:
        _events.emit_enter(frame)
    return token, scope


def exit_(token: Token[Frame | None]) -> None:
    """Leave the scope entered by ``enter``: restore the frame current before it."""
    if _events.OBSERVERS:
        _events.emit_exit(CURRENT.get())
    restore(token)


def restore(token: Token[Frame | None]) -> None:
    """Restore the frame that was current before ``token``'s ``CURRENT.set``."""
    try:
        CURRENT.reset(token)
    except (ValueError, RuntimeError):
        # The token was made in another Context (a generator resumed elsewhere) or
        # was already used: fall back to setting the previous value directly.
        old = token.old_value
        CURRENT.set(None if old is Token.MISSING else old)
        logger.debug("scope token reset across contexts", exc_info=_errors.RAISE_INTERNAL_ERRORS)


def _set_limits_locked(scope: Scope, limits: Limits) -> None:
    """Set (or replace) ``scope``'s budget; the caller holds the meter lock.

    A budget belongs to the node, not to one entry: it counts the node's inclusive
    usage over all its entries, including what was recorded before it was first set.
    Entering the node again with limits replaces them; entering it without keeps them.
    """
    scope.limits = limits
    if scope._incl is None:
        scope.meter._settle_locked()
        scope._incl = scope._subtree_acc_locked()
        scope._started = scope._incl[CALLS]


def _exceeded_on_path_locked(frame: Frame) -> list[tuple[Scope, BudgetExceeded]]:
    """Every budget on ``frame``'s path already reached, outermost first."""
    found: list[tuple[Scope, BudgetExceeded]] = []
    for s in frame.budgets:
        exc = _exceeded(s)
        if exc is not None:
            found.append((s, exc))
    return found


def _policy(s: Scope) -> OnExceed:
    return "raise" if s.limits is None else s.limits.on_exceed


def check_budgets_locked(frame: Frame, reserve: bool) -> BudgetExceeded | None:
    """Check every budgeted scope on ``frame``'s path; reserve a call slot unless refused.

    Returns the exceeded budget to act on: the first one whose ``on_exceed`` is
    "raise" (then nothing is reserved: the call will not start), else the first
    one exceeded at all, else None.
    """
    found = _exceeded_on_path_locked(frame)
    refused = next((exc for s, exc in found if _policy(s) == "raise"), None)
    if refused is not None:
        return refused
    if reserve:
        for s in frame.budgets:
            s._started += 1
    return found[0][1] if found else None


def _exceeded(s: Scope) -> BudgetExceeded | None:
    lim = s.limits
    incl = s._incl
    if lim is None or incl is None:
        return None
    exc: BudgetExceeded | None = None
    if lim.max_calls is not None and s._started >= lim.max_calls:
        exc = BudgetExceeded(s.path, "max_calls", lim.max_calls, s._started)
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
    one step under the meter lock, so ``max_calls`` is exact under concurrency.
    A budget with ``on_exceed="raise"`` refuses the call. Otherwise every reached
    budget is acted on, outermost first: ``"warn"`` logs a warning, a callable is
    called with the exception; the call then goes ahead, unless a callable
    raises, which refuses the call (its slot is given back) with that exception.
    """
    if frame is None or not frame.budgets:
        return
    __tracebackhide__ = True  # pytest: show the user's call, not this frame
    lock = frame.scope.meter._lock
    with lock:
        found = _exceeded_on_path_locked(frame)
        refused = next((exc for s, exc in found if _policy(s) == "raise"), None)
        if refused is None:
            for s in frame.budgets:
                s._started += 1
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
            for s in frame.budgets:
                s._started -= 1
        raise
