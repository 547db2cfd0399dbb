"""Snapshots: a tree node's subtree copied under the lock, then built into report nodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._acc import ACC_SIZE, add_acc
from ._tree import Node
from ._usage import Usage

#: A scope's snapshot: [name, path, entries, dims, kept children, inclusive acc].
_Snap = list[Any]


def snap_locked(top: Node) -> _Snap:
    """Copy a scope's subtree as raw lists; the caller holds the meter lock (any depth)."""
    snaps: dict[int, _Snap] = {}
    order: list[Node] = []
    stack = [top]
    while stack:  # parents before children
        s = stack.pop()
        order.append(s)
        stack.extend(s.children.values())
    for s in reversed(order):  # children before parents
        dims = {k: list(v) for k, v in s._dims.items() if any(v)}
        incl = [0] * ACC_SIZE
        for v in dims.values():
            add_acc(incl, v)
        kids = []
        for c in s.children.values():
            snap = snaps.pop(id(c), None)
            if snap is not None:
                kids.append(snap)
                add_acc(incl, snap[5])
        if s is not top and not s.entries and not dims and not kids:
            continue  # never entered since a reset, nothing below: leave it out
        snaps[id(s)] = [s.name, s.path, s.entries, dims, kids, incl]
    return snaps[id(top)]


def build_nodes(top: _Snap, make_node: Callable[..., Any]) -> Any:
    """The report nodes of a snapshot (children built first, without recursion)."""
    order: list[_Snap] = []
    stack = [top]
    while stack:
        snap = stack.pop()
        order.append(snap)
        stack.extend(snap[4])
    built: dict[int, Any] = {}
    for snap in reversed(order):
        name, path, entries, dims, kids, incl = snap
        own = [0] * ACC_SIZE
        for acc in dims.values():
            add_acc(own, acc)
        built[id(snap)] = make_node(
            name=name,
            path=path,
            entries=entries,
            self_usage=Usage._from_acc(own),
            usage=Usage._from_acc(incl),
            children={k[0]: built.pop(id(k)) for k in kids},
            breakdown={k: Usage._from_acc(v) for k, v in dims.items()},
        )
    return built[id(top)]
