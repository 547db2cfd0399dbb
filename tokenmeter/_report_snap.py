"""Snapshots: a tree node's subtree built into report nodes, in one pass under the lock."""

from __future__ import annotations

import _thread
import gc
from operator import add
from typing import Any

from ._acc import ACC_SIZE, COST_SCALE
from ._tree import Node
from ._tree import dims as node_dims
from ._usage import USAGE_LAYOUT, Usage, usage_from_acc

#: The usage of a scope with no calls of its own (frozen: one object serves all).
_NO_USAGE = Usage()
_ZEROS = (0,) * ACC_SIZE


_gc_isenabled = gc.isenabled
_gc_disable = gc.disable
_gc_enable = gc.enable
#: How many threads started from Python are running, besides the main thread: a count
#: read without a lock (``threading.active_count()`` takes one that this thread may hold
#: when a signal handler on it takes a report) and without an audit event. Where it is
#: missing, 1: the collector is never paused.
_other_threads: Any = getattr(_thread, "_count", lambda: 1)


def snap_locked(top: Node, node_class: type[Any], node_layout: type[Any] | None) -> Any:
    """The report node of ``top`` and its subtree (see `build_locked`), the caller holding
    the meter lock, with Python's cyclic garbage collector paused while it is built.

    A report makes several objects per scope, none of them garbage: the collections those
    allocations set off, some of them of the whole heap, cost more than building the
    report when the tree is big. The collector is paused only when it is on and the main
    thread is the only one (another thread could turn it off meanwhile, meaning it to stay
    off), and turned on again whatever happens inside, a KeyboardInterrupt included.
    """
    if _gc_isenabled() and not _other_threads():
        # Turned off inside the try: an exception raised as the call returns (a signal
        # handler's) still turns it on again.
        try:
            _gc_disable()
            return build_locked(top, node_class, node_layout)
        finally:
            _gc_enable()
    return build_locked(top, node_class, node_layout)


def build_locked(top: Node, node_class: type[Any], node_layout: type[Any] | None) -> Any:
    """The report node of ``top`` and its subtree; the caller holds the meter lock.

    Any depth, no recursion. A scope never entered since a reset, with nothing
    below, is left out; children keep their order. ``node_class`` is built as
    ``node_class(name, path, entries, self_usage, usage, children, breakdown)``,
    or, when ``node_layout`` is given (a class of the same slots that `_report`
    checked), as a ``node_layout`` filled by plain slot stores and then given
    ``node_class`` as its class; `Usage` objects likewise when
    ``_usage.USAGE_LAYOUT`` is set. The report is built here, not copied first:
    building it costs about what the copy did.

    Usage objects are frozen, so one is shared where the numbers are the same: a
    scope with one dimension has it as its own usage, a scope without children (or
    with one child and no calls of its own) the same inclusive usage as that.
    """
    fast = node_layout is not None and USAGE_LAYOUT is not None
    new = object.__new__
    ul: Any = USAGE_LAYOUT
    layout: Any = node_layout
    u_cls = Usage
    # Depth first, children in their order, each node after its subtree: a node's
    # kept children are then the last entries of ``done``. A leaf is built when it is
    # met, while its node is still in the processor's cache (a big tree is not).
    #
    # Children and counters are copied as they are read (a tuple of a dict's values or of
    # a list's counters is made in one step): a signal handler on this thread may count a
    # call or make a scope while this runs (the lock is re-entrant), and the report still
    # adds up, each node's inclusive usage the sum of what it shows.
    kids = tuple(top.children.values())
    its = [iter(kids)]
    parents = [top]
    counts = [len(kids)]
    nxt = next
    # Per visited node, its report node and its inclusive numbers (None when left out), in
    # two lists side by side: no pair allocated per node.
    done: list[Any] = []
    done_incl: list[Any] = []
    put = done.append
    put_incl = done_incl.append
    while its:
        s = nxt(its[-1], None)
        if s is None:
            its.pop()
            s = parents.pop()
            n = counts.pop()
        else:
            if s.children:
                kids = tuple(s.children.values())
                parents.append(s)
                its.append(iter(kids))
                counts.append(len(kids))
                continue
            n = 0
        d = tuple(node_dims(s).items())
        own: list[int] | tuple[int, ...] | None = None
        self_usage = _NO_USAGE
        breakdown: dict[Any, Usage] = {}
        if len(d) == 1:
            for key, live in d:
                v = tuple(live)
                if any(v):
                    own = v
                    if fast:
                        u = new(ul)
                        # An accumulator lists its counters in Usage's field order.
                        (
                            u.calls,
                            u.input_tokens,
                            u.cache_read_tokens,
                            u.cache_write_tokens,
                            u.output_tokens,
                            u.reasoning_tokens,
                            cost,
                            u.unpriced_calls,
                            u.failed_calls,
                            u.estimated_calls,
                        ) = v
                        u.cost_usd = cost / COST_SCALE
                        u.__class__ = u_cls
                    else:
                        u = usage_from_acc(v)
                    self_usage = breakdown[key] = u
        elif d:
            acc: list[int] | tuple[int, ...] = _ZEROS
            for key, live in d:
                v = tuple(live)
                if any(v):
                    breakdown[key] = usage_from_acc(v)
                    acc = list(map(add, acc, v))
            if breakdown:
                own, self_usage = acc, usage_from_acc(acc)
        children: dict[str, Any] = {}
        incl, usage = own, self_usage
        if n:
            incls = [] if own is None else [own]
            for node, kid_incl in zip(done[-n:], done_incl[-n:], strict=True):
                if node is not None:
                    children[node.name] = node
                    incls.append(kid_incl)
                    if own is None:
                        usage = node.usage  # the one child's, if it is the only one
            del done[-n:]
            del done_incl[-n:]
            if len(incls) > 1:
                incl = list(map(sum, zip(*incls, strict=True)))  # column sums, in C
                if fast:
                    u = new(ul)
                    (
                        u.calls,
                        u.input_tokens,
                        u.cache_read_tokens,
                        u.cache_write_tokens,
                        u.output_tokens,
                        u.reasoning_tokens,
                        cost,
                        u.unpriced_calls,
                        u.failed_calls,
                        u.estimated_calls,
                    ) = incl
                    u.cost_usd = cost / COST_SCALE
                    u.__class__ = u_cls
                else:
                    u = usage_from_acc(incl)
                usage = u
            elif incls:
                incl = incls[0]
        if incl is None:
            if not (children or s.entries or s is top):
                put(None)
                put_incl(None)
                continue
            incl = _ZEROS
        if fast:
            node = new(layout)
            node.name = s.name
            node.path = s.path
            node.entries = s.entries
            node.self_usage = self_usage
            node.usage = usage
            node.children = children
            node.breakdown = breakdown
            node.__class__ = node_class
        else:
            node = node_class(s.name, s.path, s.entries, self_usage, usage, children, breakdown)
        put(node)
        put_incl(incl)
    return done[-1]
