"""The call tree and its counters: nodes, and one tree's lock, tallies, records and queue.

Counters change only through this module's functions, under the tree's lock: `add`
(one call), `settle_locked` (the deferred LiteLLM results), `reset_subtree`; budget
tallies too (what they are compared with lives in ``_budgets``). Node and tree state
is private to this module (a `Scope` is a node, a `Meter` a tree): others use these.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from . import _events
from ._acc import ACC_SIZE, CALLS, add_acc, count_call
from ._drain import drain_queued
from ._errors import internal_errors_swallowed
from ._frame import Frame

if TYPE_CHECKING:
    from ._kept import Kept
    from ._limits import Limits
    from ._record import CallRecord

#: A dimension key of the per-node breakdown: (model, provider, module, operation).
DimKey = tuple[str, str | None, str | None, str | None]

#: Counts a batch of deferred results into a tree; see `count_deferred_with`.
_apply_pending: Callable[[Tree, list[tuple[Any, ...]]], None] | None = None

_EMPTY: Mapping[str, Any] = {}
_perf_counter = time.perf_counter
_ZEROS = (0,) * ACC_SIZE

#: A tree settles its deferred results once this many are waiting.
PENDING_BATCH = 256

#: Default bound on kept per-call records (when ``keep_records`` is on).
DEFAULT_MAX_RECORDS = 100_000


def count_deferred_with(apply: Callable[[Tree, list[tuple[Any, ...]]], None]) -> None:
    """Register ``apply(tree, batch)``, which counts deferred results, lock held (LiteLLM)."""
    global _apply_pending
    _apply_pending = apply


class Node:
    """A node of a tree: its own tallies by dimension, children (of its class), entries, budget."""

    __slots__ = (
        "__weakref__",
        "_dims",
        "_fast",
        "_incl",
        "_since",
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
        # The same accumulators, as (id, acc), keyed by LiteLLM's own names of model and
        # provider: one lookup for LiteLLM attribution (never replaced, reset in place).
        self._fast: dict[tuple[Any, Any, str | None, str | None], tuple[int, list[int]]] = {}
        # Inclusive tally and started-call count, kept only while the node has a budget.
        self._incl: list[int] | None = None
        self._started = 0
        # When the budget's tally was made (``time.perf_counter()``): see `budgets_set_since`.
        self._since = 0.0
        # The budgeted nodes on the path here, outermost first: one list, changed in place
        # and shared by the node's frames (a task already inside sees a later budget).
        self.budgets: list[Any] = [] if parent is None else list(parent.budgets)
        # False once removed from the tree (`_scope.detach_child_locked`): frames go unused.
        self.attached = True

    def walk(self) -> Iterator[Any]:
        """This node and its descendants, depth first."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(list(node.children.values())))


# -- nodes: the caller holds the tree's lock ---------------------------------------------


def own_acc_locked(node: Node) -> list[int]:
    """``node``'s own usage (children excluded), as one accumulator."""
    acc = [0] * ACC_SIZE
    for d in tuple(node._dims.values()):
        add_acc(acc, d)
    return acc


def subtree_acc_locked(node: Node) -> list[int]:
    """The usage of ``node`` and its subtree, as one accumulator."""
    acc = [0] * ACC_SIZE
    for n in node.walk():
        for d in tuple(n._dims.values()):
            add_acc(acc, d)
    return acc


def update_budgets_locked(node: Node) -> None:
    """Recompute ``budgets`` of ``node`` and its subtree, in place (limits changed)."""
    for n in node.walk():
        above = [] if n.parent is None else n.parent.budgets
        n.budgets[:] = [*above, n] if n.limits is not None else above


def child_locked(node: Any, name: str) -> Any:
    """``node``'s child ``name``, made (of ``node``'s class) if missing."""
    child = node.children.get(name)
    if child is None:
        # setdefault: a signal handler on this thread may have made it meanwhile.
        child = node.children.setdefault(name, type(node)(name, node, node.meter))
    return child


#: ``dims(node)``: its own tallies by dimension key (live: use them under the lock).
dims: Callable[[Node], dict[DimKey, list[int]]] = attrgetter("_dims")


def budget_tally(node: Node) -> tuple[list[int] | None, int]:
    """``node``'s inclusive budget tally (None without a budget) and its started calls."""
    return node._incl, node._started


def set_budget_tally_locked(node: Node, incl: list[int] | None, started: int) -> None:
    """Set ``node``'s budget tally and started-call count (a new budget counts from now)."""
    node._incl, node._started = incl, started
    node._since = _perf_counter()


def budgets_set_since(budgets: Sequence[Node], started: float) -> list[Node]:
    """Those of ``budgets`` whose tally was made after ``started`` (a ``time.perf_counter()``).

    A call that started then was never checked against them: no slot was reserved for it.
    Read without the lock (a budget set this instant is missed, as before the check)."""
    return [b for b in budgets if b._since > started]


def start_calls_locked(budgets: Sequence[Node], n: int) -> None:
    """Count ``n`` more calls started (negative: given back) under each of ``budgets``."""
    for b in budgets:
        b._started += n


def add_to_budget_locked(node: Node, acc: Sequence[int]) -> None:
    """Count ``acc`` (calls that landed below ``node``) as started and spent on its budget."""
    if node._incl is not None:
        add_acc(node._incl, acc)
        node._started += acc[CALLS]


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
        # Re-entrant: a signal handler or a finalizer on a thread inside a call below
        # runs its own tokenmeter calls at once instead of waiting for itself forever.
        # Every change under it is safe to interleave that way (see `add`).
        self._lock = threading.RLock()
        self.root: Any = node_class("", None, self)
        self._pending: list[tuple[Any, ...]] = []
        self._root_frame = Frame(
            self.root, None, None, _EMPTY, self.root.budgets, None, None, frame_tables(self.root)
        )
        self.max_records = max_records
        self._records: deque[Kept] | None = None
        self._shapes: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # see `kept_shapes`
        # LiteLLM results not yet added to the tree (see `settle_locked`), above.
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
                for node in self.root.walk():
                    node._fast.clear()  # a call with a record takes the general path
            elif not value:
                self._records = None
                self._shapes.clear()

    # -- reading and resetting -------------------------------------------------------

    def records(self) -> list[CallRecord]:
        """The kept per-call records, oldest first (empty unless ``keep_records``)."""
        drain_queued()
        with self._lock:
            rows = [] if self._records is None else list(self._records)
        from ._kept import records_of

        return records_of(rows)

    def _restart_after_fork(self) -> None:
        """In a forked child: a fresh, unlocked tree with the same nodes and budget tallies.

        Calls, entries, records and queue are the parent's; the lock is replaced (its
        holder may not exist here). What was spent before the fork still counts toward
        a budget in the child."""
        self._lock = threading.RLock()
        self._pending.clear()  # in place: frames hold it
        if self._records is not None:
            self._records = deque(maxlen=self.max_records)
        self._records_seen = 0
        self._first_ts = self._last_ts = None
        for node in self.root.walk():
            for acc in node._dims.values():
                acc[:] = _ZEROS  # in place: ``_fast`` holds the same lists
            node.entries = 0


# -- trees ---------------------------------------------------------------------------------


def tree_lock(tree: Tree) -> Any:
    """The lock under which ``tree``'s counters change."""
    return tree._lock


def root_frame(tree: Tree) -> Frame:
    """The frame of ``tree``'s root: where usage lands outside any scope of it."""
    return tree._root_frame


def frame_under(tree: Tree, frame: Frame | None) -> Frame:
    """The nearest frame of ``tree`` in ``frame``'s chain, else its root frame."""
    while frame is not None:
        if frame.scope.meter is tree:
            return frame
        frame = frame.prev
    return tree._root_frame


def kept_locked(tree: Tree) -> tuple[deque[Kept] | None, int, float | None, float | None]:
    """``tree``'s kept records (None when not kept), how many were kept ever, its time span.

    Kept records are rows: `_kept.records_of` (outside the lock) makes them `CallRecord`s.
    """
    return tree._records, tree._records_seen, tree._first_ts, tree._last_ts


def kept_shapes(tree: Tree) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """``tree``'s table of the shapes its kept LiteLLM rows share (`_kept.call_row`)."""
    return tree._shapes


def add_kept_locked(
    tree: Tree, first: float | None, last: float | None, seen: int, recs: Sequence[CallRecord]
) -> None:
    """Widen ``tree``'s time span to ``first``..``last``; keep ``recs`` of ``seen`` calls."""
    if first is not None and (tree._first_ts is None or first < tree._first_ts):
        tree._first_ts = first
    if last is not None and (tree._last_ts is None or last > tree._last_ts):
        tree._last_ts = last
    if tree._records is not None:
        tree._records_seen += seen
        tree._records.extend(recs)


# -- counting ------------------------------------------------------------------------------


def add(
    tree: Tree,
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
    plain: bool = False,
    row: tuple[Any, ...] | None = None,
) -> None:
    """Count one call on ``frame``'s scope and budgets, under the lock; keep ``rec``.

    ``reserved``: the call was already counted as started on the budgets. ``alias``
    files the scope's tally under LiteLLM's own names too (``Node._fast``). ``plain``:
    ``rec`` is a manual record with nothing but counts and a cost, its module and
    operation the frame's; it is kept as a compact row (see `_kept`). ``row``: the row to
    keep instead of ``rec`` (a LiteLLM call's, `_kept.call_row`).
    """
    scope = frame.scope
    budgets = frame.budgets
    # ``with``, not acquire() then ``try``: a signal handled just after acquire() returned
    # (a KeyboardInterrupt) would leave the lock held, and every later call would hang.
    # A signal handler on this thread may count a call of its own at any point between
    # two statements here (the lock is re-entrant): each counter changes by one ``+=``,
    # which no handler interrupts, and a new tally goes in by ``setdefault``.
    with tree._lock:
        acc = scope._dims.get(key)
        if acc is None:
            acc = scope._dims.setdefault(key, [0] * ACC_SIZE)
        if alias is not None and alias not in scope._fast and tree._records is None:
            scope._fast[alias] = (id(acc), acc)
        count_call(
            acc, input_tokens, output_tokens, cache_read, cache_write, reasoning, cost_units,
            failed, estimated,
        )  # fmt: skip
        if budgets:
            for b in budgets:
                if b._incl is not None:
                    count_call(
                        b._incl, input_tokens, output_tokens, cache_read, cache_write,
                        reasoning, cost_units, failed, estimated,
                    )  # fmt: skip
                if not reserved:
                    b._started += 1
        first = tree._first_ts
        if first is None or timestamp < first:
            tree._first_ts = timestamp
        last = tree._last_ts
        if last is None or timestamp > last:
            tree._last_ts = timestamp
        records = tree._records
        if records is not None:
            tree._records_seen += 1
            if row is not None:
                records.append(row)
            elif rec is not None:
                if not plain:
                    records.append(rec)
                elif cache_read or cache_write or reasoning:
                    records.append(
                        (frame, key[0], key[1], input_tokens, output_tokens, rec.cost_usd,
                         timestamp, cache_read, cache_write, reasoning)
                    )  # fmt: skip
                else:
                    records.append(
                        (frame, key[0], key[1], input_tokens, output_tokens, rec.cost_usd,
                         timestamp)
                    )  # fmt: skip
    if rec is not None and _events.OBSERVERS:
        _events.emit_call(rec, frame)


def frame_tables(node: Node) -> tuple[dict[Any, Any], list[Any]]:
    """``node``'s table of LiteLLM tallies and its tree's queue, for a `Frame` of it.

    A tally is filed there (``alias`` of `add`) only while the tree keeps no records,
    so a call found there can be queued as it is, for `settle_locked` to count."""
    return node._fast, node.meter._pending


def enter_child(
    parent: Node, name: str, limits: Any, set_limits: Callable[[Any, Any], None]
) -> tuple[Any, tuple[dict[Any, Any], list[Any]]]:
    """Count an entry of ``parent``'s child ``name`` (made if missing), ``set_limits`` on
    it if given; the child and its `frame_tables`."""
    with parent.meter._lock:
        scope = parent.children.get(name)
        if scope is None:
            scope = child_locked(parent, name)
        scope.entries += 1
        if limits is not None:
            set_limits(scope, limits)
    return scope, (scope._fast, parent.meter._pending)


def settle(tree: Tree) -> None:
    """Add the deferred results to the tree now (takes the lock)."""
    drain_queued()
    with tree._lock:
        settle_locked(tree)


def settle_locked(tree: Tree) -> None:
    """Count the deferred LiteLLM results (lock held), by what `count_deferred_with` registered.

    Every reading of the tree (usage, reports, budgets set, resets) settles first, so a
    call is in every reading taken after it returned. ``list.append`` and the slice
    here are atomic: a result appended meanwhile stays for next time.
    """
    pending = tree._pending
    if pending:
        n = len(pending)
        batch = pending[:n]
        del pending[:n]
        if _apply_pending is not None:
            with internal_errors_swallowed("counting LiteLLM calls"):
                _apply_pending(tree, batch)


def reset_subtree(tree: Tree, top: Node) -> None:
    """Zero the usage, entries and budgets of ``top`` and its subtree (nodes stay)."""
    with tree._lock:
        settle_locked(tree)  # calls made before the reset are reset with it
        for s in top.walk():
            # Zeroed in place: a call queued with its tally after the reset lands here.
            for acc in tuple(s._dims.values()):
                acc[:] = _ZEROS
            s.entries = 0
            if s._incl is not None:
                # A reset node is as good as new: its budget goes too, so a later entry
                # without limits (the next test) does not inherit it.
                s.limits = None
                s._incl = None
                s._started = 0
        # Budget tallies of ancestors include the subtree: recompute them, keeping
        # the slots of calls still in flight (started, not yet counted).
        anc = top.parent
        while anc is not None:
            if anc._incl is not None:
                in_flight = anc._started - anc._incl[CALLS]
                anc._incl = subtree_acc_locked(anc)
                anc._started = anc._incl[CALLS] + max(0, in_flight)
            anc = anc.parent
        update_budgets_locked(top)
        if top is tree.root:
            if tree._records is not None:
                tree._records.clear()
            tree._records_seen = 0
            tree._first_ts = tree._last_ts = None
        elif tree._records is not None:
            from ._kept import kept_path

            n = len(top.path)
            keep = [r for r in tree._records if kept_path(r)[:n] != top.path]
            # Removed records are not "dropped" ones: take them out of the count too.
            tree._records_seen -= len(tree._records) - len(keep)
            tree._records.clear()
            tree._records.extend(keep)


#: Every live tree, for the fork handler.
_TREES: weakref.WeakSet[Tree] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for tree in list(_TREES):
        tree._restart_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
