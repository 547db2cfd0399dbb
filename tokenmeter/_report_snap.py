"""Snapshots: a tree node's subtree copied under the lock, then built into report nodes."""

from __future__ import annotations

from collections.abc import Callable
from operator import add
from typing import Any

from ._acc import ACC_SIZE
from ._tree import Node
from ._usage import Usage, usage_from_acc

#: A scope's snapshot: (name, path, entries, dims, kept children).
_Snap = tuple[str, tuple[str, ...], int, dict[Any, list[int]], list[Any]]

#: The usage of a scope with no calls of its own (frozen: one object serves all).
_NO_USAGE = Usage()
_ZEROS = (0,) * ACC_SIZE

# Both functions walk a tree without recursion in the same way: a preorder that pops
# the last child pushed, reversed. That is a postorder visiting each node's children in
# their order, each child's subtree whole before its parent: the results of a node's
# ``n`` children are then the last ``n`` on a stack of results.


def snap_locked(top: Node) -> _Snap:
    """Copy a scope's subtree as raw lists; the caller holds the meter lock (any depth).

    Only copies: the sums are made by `build_nodes`, after the lock is released.
    """
    order: list[Node] = []
    stack = [top]
    while stack:
        s = stack.pop()
        order.append(s)
        stack.extend(s.children.values())
    done: list[_Snap | None] = []
    for s in reversed(order):
        dims = {k: v[:] for k, v in s._dims.items() if any(v)}
        n = len(s.children)
        if n:
            kids = [k for k in done[-n:] if k is not None]
            del done[-n:]
        else:
            kids = []
        if s is not top and not s.entries and not dims and not kids:
            done.append(None)  # never entered since a reset, nothing below: left out
        else:
            done.append((s.name, s.path, s.entries, dims, kids))
    snap = done[0]
    assert snap is not None
    return snap


def build_nodes(top: _Snap, make_node: Callable[..., Any]) -> Any:
    """The report nodes of a snapshot (children built first, without recursion).

    ``make_node(name, path, entries, self_usage, usage, children, breakdown)``. Usage
    objects are frozen, so one is shared where the numbers are the same: a scope with
    one dimension has it as its own usage, a scope without children has its own
    usage as its inclusive one.
    """
    order: list[_Snap] = []
    stack = [top]
    while stack:
        snap = stack.pop()
        order.append(snap)
        stack.extend(snap[4])
    done: list[tuple[Any, list[int] | tuple[int, ...]]] = []
    for name, path, entries, dims, kids in reversed(order):
        own: list[int] | tuple[int, ...]
        if len(dims) == 1:
            for key, own in dims.items():
                self_usage = usage_from_acc(own)
                breakdown = {key: self_usage}
        elif dims:
            breakdown = {}
            own = _ZEROS
            for key, acc in dims.items():
                breakdown[key] = usage_from_acc(acc)
                own = list(map(add, own, acc))
            self_usage = usage_from_acc(own)
        else:
            own, self_usage, breakdown = _ZEROS, _NO_USAGE, {}
        children = {}
        if kids:
            n = len(kids)
            incl = own
            for kid, (node, kid_incl) in zip(kids, done[-n:], strict=True):
                children[kid[0]] = node
                incl = list(map(add, incl, kid_incl))
            del done[-n:]
            usage = usage_from_acc(incl)
        else:
            incl, usage = own, self_usage
        done.append((make_node(name, path, entries, self_usage, usage, children, breakdown), incl))
    return done[0][0]
