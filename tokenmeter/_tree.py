"""The call tree and its counters: nodes, frames, and one tree's lock, tallies and records.

A `Tree` owns its nodes, a lock, the per-call records it keeps, and the queue of
deferred LiteLLM results. Everything that changes counters goes through the
tree's methods, under its lock: `Tree._add` (one call), `Tree._settle_locked`
(the queue), `Tree._reset_subtree`. Budget tallies (`Node._incl`) are counted
here too, on the hot path; what they are compared with lives in ``_budgets``.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _events
from ._acc import (
    ACC_SIZE,
    CACHE_READ,
    CACHE_WRITE,
    CALLS,
    COST,
    ESTIMATED,
    FAILED,
    INPUT,
    OUTPUT,
    REASONING,
    UNPRICED,
    add_acc,
    cost_to_units,
)
from ._errors import internal_errors_swallowed

if TYPE_CHECKING:
    from ._limits import Limits
    from ._record import CallRecord

#: A dimension key of the per-node breakdown: (model, provider, module, operation).
DimKey = tuple[str, str | None, str | None, str | None]

#: Counts a batch of deferred results into a tree; see `count_deferred_with`.
_apply_pending: Callable[[Tree, list[tuple[Any, ...]]], None] | None = None

_EMPTY: Mapping[str, Any] = {}
#: A frame's ``kids`` until a child is cached (shared, never written: see `Frame`).
NO_KIDS: dict[str, Any] = {}
_ZEROS = (0,) * ACC_SIZE

#: Records what GC finalizers queued; see `drain_queued_with`.
_drain: Callable[[], None] | None = None

#: A tree settles its deferred results once this many are waiting.
PENDING_BATCH = 256

#: Default bound on kept per-call records (when ``keep_records`` is on).
DEFAULT_MAX_RECORDS = 100_000


def count_deferred_with(apply: Callable[[Tree, list[tuple[Any, ...]]], None]) -> None:
    """Register what counts deferred results (the LiteLLM adapter, when it loads).

    ``apply(tree, batch)`` is called with the tree's lock held, from `Tree._settle_locked`.
    Nothing is deferred before it is registered.
    """
    global _apply_pending
    _apply_pending = apply


def drain_queued_with(drain: Callable[[], None]) -> None:
    """Register what records work queued where no lock may be taken (abandoned LiteLLM streams).

    A GC finalizer can run on a thread that already holds a tree's lock, so it only
    appends to a lock-free queue; ``drain()`` records what is queued. It is called with
    no tree lock held, by `drain_queued`: before every reading of a tree, before a
    budget check, and by the adapter at its own safe points.
    """
    global _drain
    _drain = drain


def drain_queued() -> None:
    """Record what GC finalizers queued; the calling thread must hold no tree's lock."""
    drain = _drain
    if drain is not None:
        with internal_errors_swallowed("recording abandoned streams"):
            drain()


class Node:
    """A node of a tree: its own tallies by dimension, its children, its entries, its budget.

    Entering ``track(name)`` under a node reuses its child of that name, so a loop
    of ``with track("sample")`` makes one node whose ``entries`` counts the loop's
    turns. Children are made of the parent's class.
    """

    __slots__ = (
        "__weakref__",
        "_dims",
        "_fast",
        "_incl",
        "_started",
        "attached",
        "budgets",
        "children",
        "entries",
        "limits",
        "meter",
        "name",
        "parent",
        "path",
    )

    def __init__(self, name: str, parent: Node | None, meter: Tree) -> None:
        self.name = name
        self.parent = parent
        self.meter = meter
        self.path: tuple[str, ...] = () if parent is None else (*parent.path, name)
        self.children: dict[str, Any] = {}
        self.entries = 0
        self.limits: Limits | None = None
        # Own usage, split by dimension key: {(model, provider, module, operation): acc}.
        self._dims: dict[DimKey, list[int]] = {}
        # The same accumulators keyed as LiteLLM names a call's model and provider
        # (before the adapter normalises them), as (id, accumulator): LiteLLM
        # attribution finds its tally with one lookup. Accumulators are never
        # replaced (a reset zeroes them in place), so an entry here stays valid.
        self._fast: dict[tuple[Any, Any, str | None, str | None], tuple[int, list[int]]] = {}
        # Inclusive tally and started-call count, kept only while the node has a budget.
        self._incl: list[int] | None = None
        self._started = 0
        # The budgeted nodes on the path here (ancestors and self), outermost first.
        # One list per node, changed in place when a budget is set or reset, and shared
        # by every frame of the node: a task already inside sees a budget set later.
        self.budgets: list[Any] = [] if parent is None else list(parent.budgets)
        # False once removed from the tree (`detach_child_locked`): its cached frames go unused.
        self.attached = True

    def walk(self) -> Iterator[Any]:
        """This node and its descendants, depth first."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(list(node.children.values())))

    # -- the caller holds the tree's lock -------------------------------------------

    def _own_acc_locked(self) -> list[int]:
        acc = [0] * ACC_SIZE
        for d in self._dims.values():
            add_acc(acc, d)
        return acc

    def _subtree_acc_locked(self) -> list[int]:
        acc = [0] * ACC_SIZE
        for node in self.walk():
            for d in node._dims.values():
                add_acc(acc, d)
        return acc

    def _update_budgets_locked(self) -> None:
        """Recompute ``budgets`` of this node and its subtree, in place (limits changed)."""
        for node in self.walk():
            above = [] if node.parent is None else node.parent.budgets
            node.budgets[:] = [*above, node] if node.limits is not None else above

    def _child_locked(self, name: str) -> Any:
        child = self.children.get(name)
        if child is None:
            child = type(self)(name, self, self.meter)
            self.children[name] = child
        return child


class Frame:
    """The immutable value of the scope ContextVar: where usage lands right now.

    Never mutated after creation. Entering a scope makes a new frame, or reuses one
    from the parent frame's ``kids``: a frame entered without module, operation or
    attributes is a pure function of its parent frame and its node (budgets are the
    node's shared list), so it is cached there by name and a repeated entry
    allocates no frame. Only while no observer is registered: observers get a
    fresh frame per entry; ``kids`` is `NO_KIDS` until a child is cached. ``old`` is the
    exact value of the ContextVar before the entry, which leaving the scope sets back.
    """

    __slots__ = (
        "attributes",
        "budgets",
        "kids",
        "module",
        "name",
        "old",
        "operation",
        "prev",
        "scope",
    )

    def __init__(
        self,
        scope: Any,
        module: str | None,
        operation: str | None,
        attributes: Mapping[str, Any],
        budgets: Sequence[Any],
        prev: Frame | None,
        old: Frame | object | None = ...,
    ) -> None:
        self.scope = scope
        self.name: str = scope.name
        self.module = module
        self.operation = operation
        self.attributes = attributes
        self.budgets = budgets
        self.prev = prev
        self.old: Frame | None = prev if old is ... else old  # type: ignore[assignment]
        self.kids: dict[str, Frame] = NO_KIDS


def detach_child_locked(parent: Node, name: str) -> None:
    """Remove ``parent``'s child ``name`` (lock held): its cached frames go unused."""
    node = parent.children.pop(name, None)
    if node is not None:
        for n in node.walk():
            n.attached = False


class Tree:
    """One call tree: its root, its lock, its kept records and its queue of deferred results."""

    def __init__(
        self,
        node_class: type[Node] = Node,
        *,
        keep_records: bool = False,
        max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise ValueError(f"max_records must be a positive integer, got {max_records!r}")
        self._lock = threading.Lock()
        self.root: Any = node_class("", None, self)
        self._root_frame = Frame(self.root, None, None, _EMPTY, self.root.budgets, None)
        self.max_records = max_records
        self._records: deque[CallRecord] | None = None
        # LiteLLM results not yet added to the tree (see `_settle_locked`).
        self._pending: list[tuple[Any, ...]] = []
        self._records_seen = 0
        self._first_ts: float | None = None
        self._last_ts: float | None = None
        self.keep_records = keep_records
        _TREES.add(self)

    @property
    def keep_records(self) -> bool:
        """Whether per-call records are kept for export (bounded by ``max_records``)."""
        return self._records is not None

    @keep_records.setter
    def keep_records(self, value: bool) -> None:
        with self._lock:
            if value and self._records is None:
                self._records = deque(maxlen=self.max_records)
                self._records_seen = 0
            elif not value:
                self._records = None

    def _frame_under(self, frame: Frame | None) -> Frame:
        """The nearest frame of this tree in ``frame``'s chain, else the root frame."""
        while frame is not None:
            if frame.scope.meter is self:
                return frame
            frame = frame.prev
        return self._root_frame

    # -- counting -----------------------------------------------------------------

    def _add_record(self, frame: Frame, rec: CallRecord, reserved: bool) -> None:
        """Add a finished record to ``frame``'s scope (the one current when the call was made)."""
        self._add(
            frame,
            (rec.model, rec.provider, rec.module, rec.operation),
            rec.input_tokens,
            rec.output_tokens,
            rec.cache_read_tokens,
            rec.cache_write_tokens,
            rec.reasoning_tokens,
            None if rec.cost_usd is None else cost_to_units(rec.cost_usd),
            rec.failed,
            rec.estimated,
            rec.timestamp,
            rec,
            reserved,
        )

    def _add(
        self,
        frame: Frame,
        key: DimKey,
        input_tokens: int,
        output_tokens: int,
        cache_read: int,
        cache_write: int,
        reasoning: int,
        cost_units: int | None,
        failed: bool,
        estimated: bool,
        timestamp: float,
        rec: CallRecord | None,
        reserved: bool,
        alias: tuple[Any, Any, str | None, str | None] | None = None,
    ) -> None:
        """The hot path: add one call's numbers to its scope's tally, under the lock.

        ``alias``, if given, also files the tally in ``scope._fast`` under that key
        (LiteLLM's names for the model and provider; see ``_litellm.deferred``).
        """
        scope = frame.scope
        with self._lock:
            acc = scope._dims.get(key)
            if acc is None:
                acc = scope._dims[key] = [0] * ACC_SIZE
            if alias is not None and alias not in scope._fast:
                scope._fast[alias] = (id(acc), acc)
            acc[CALLS] += 1
            acc[INPUT] += input_tokens
            acc[OUTPUT] += output_tokens
            acc[CACHE_READ] += cache_read
            acc[CACHE_WRITE] += cache_write
            acc[REASONING] += reasoning
            if cost_units is None:
                acc[UNPRICED] += 1
            else:
                acc[COST] += cost_units
            if failed:
                acc[FAILED] += 1
            if estimated:
                acc[ESTIMATED] += 1
            if frame.budgets:
                one = one_call_acc(
                    input_tokens,
                    output_tokens,
                    cache_read,
                    cache_write,
                    reasoning,
                    cost_units,
                    failed,
                    estimated,
                )
                for b in frame.budgets:
                    if b._incl is not None:
                        add_acc(b._incl, one)
            if not reserved:
                for b in frame.budgets:
                    b._started += 1
            if self._first_ts is None or timestamp < self._first_ts:
                self._first_ts = timestamp
            if self._last_ts is None or timestamp > self._last_ts:
                self._last_ts = timestamp
            records = self._records
            if records is not None:
                self._records_seen += 1
                if rec is not None:
                    records.append(rec)
        if rec is not None and _events.OBSERVERS:
            _events.emit_call(rec, frame)

    def _settle(self) -> None:
        """Add the deferred results to the tree now (takes the lock)."""
        drain_queued()
        with self._lock:
            self._settle_locked()

    def _settle_locked(self) -> None:
        """Add the deferred results to the tree; the caller holds the lock.

        LiteLLM attribution appends a plain response (its scope's tally, the numbers
        it held when returned, the call's start time) to ``_pending`` instead
        of counting it under the lock, and the batch is counted here, by what
        `count_deferred_with` registered. Everything that reads the tree (usage,
        reports, budgets being set, resets) settles first, so a call is in every
        reading taken after it returned. ``list.append`` and the slice taken here
        are atomic: a result appended meanwhile stays for next time.
        """
        pending = self._pending
        if pending:
            n = len(pending)
            batch = pending[:n]
            del pending[:n]
            if _apply_pending is not None:
                with internal_errors_swallowed("counting LiteLLM calls"):
                    _apply_pending(self, batch)

    # -- reading and resetting -------------------------------------------------------

    def records(self) -> list[CallRecord]:
        """The kept per-call records, oldest first (empty unless ``keep_records``)."""
        drain_queued()
        with self._lock:
            return [] if self._records is None else list(self._records)

    def _restart_after_fork(self) -> None:
        """In a forked child: a fresh, unlocked tree with the same nodes and budgets.

        The parent's calls, entries, records and queued results are the parent's: the
        child's report holds only its own calls. The lock may have been held by a
        thread that does not exist here, so it is replaced. Nodes stay (the child is
        still inside its scopes), and budget tallies stay: what was spent before the
        fork still counts toward a budget in the child.
        """
        self._lock = threading.Lock()
        self._pending = []
        if self._records is not None:
            self._records = deque(maxlen=self.max_records)
        self._records_seen = 0
        self._first_ts = self._last_ts = None
        for node in self.root.walk():
            for acc in node._dims.values():
                acc[:] = _ZEROS  # in place: ``_fast`` holds the same lists
            node.entries = 0

    def _reset_subtree(self, top: Node) -> None:
        with self._lock:
            self._settle_locked()  # calls made before the reset are reset with it
            for s in top.walk():
                # Zeroed in place, not dropped: a call queued with its tally before the
                # reset was counted above; one queued after it lands in the zeroed tally.
                for acc in s._dims.values():
                    acc[:] = _ZEROS
                s.entries = 0
                if s._incl is not None:
                    # A reset node is as good as new: its budget goes too (the next entry
                    # that sets limits sets it again), so a later entry without limits,
                    # e.g. in the next test, does not inherit it.
                    s.limits = None
                    s._incl = None
                    s._started = 0
            # Budget tallies of ancestors include the subtree: recompute them, keeping
            # the slots of calls still in flight (started, not yet counted).
            anc = top.parent
            while anc is not None:
                if anc._incl is not None:
                    in_flight = anc._started - anc._incl[CALLS]
                    anc._incl = anc._subtree_acc_locked()
                    anc._started = anc._incl[CALLS] + max(0, in_flight)
                anc = anc.parent
            top._update_budgets_locked()
            if top is self.root:
                if self._records is not None:
                    self._records.clear()
                self._records_seen = 0
                self._first_ts = self._last_ts = None
            elif self._records is not None:
                n = len(top.path)
                keep = [r for r in self._records if r.path[:n] != top.path]
                # Removed records are not "dropped" ones: take them out of the count too.
                self._records_seen -= len(self._records) - len(keep)
                self._records.clear()
                self._records.extend(keep)


def one_call_acc(
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write: int,
    reasoning: int,
    cost_units: int | None,
    failed: bool,
    estimated: bool,
) -> list[int]:
    """The accumulator of one call."""
    return [
        1,
        input_tokens,
        cache_read,
        cache_write,
        output_tokens,
        reasoning,
        0 if cost_units is None else cost_units,
        1 if cost_units is None else 0,
        1 if failed else 0,
        1 if estimated else 0,
    ]


#: Every live tree, for the fork handler.
_TREES: weakref.WeakSet[Tree] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for tree in list(_TREES):
        tree._restart_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
