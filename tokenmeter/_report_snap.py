"""Snapshots: a tree node's subtree copied under the lock, then built into report nodes."""

from __future__ import annotations

from collections.abc import Callable
from operator import add
from typing import Any

from ._acc import ACC_SIZE
from ._tree import Node
from ._tree import dims as node_dims
from ._usage import Usage, usage_from_acc

#: One scope's copy: (name, path, entries, dims or None, number of kept children).
_Snap = tuple[str, tuple[str, ...], int, "dict[Any, list[int]] | None", int]

#: The usage of a scope with no calls of its own (frozen: one object serves all).
_NO_USAGE = Usage()
_ZEROS = (0,) * ACC_SIZE


def snap_locked(top: Node) -> list[_Snap]:
    """Copy a scope's subtree; the caller holds the meter lock (any depth, no recursion).

    The copies come in postorder, each scope after its kept children (in their
    order), ``top`` last; a scope never entered since a reset, with nothing below,
    is left out. Only copies are made here: `build_nodes` sums them, after the lock
    is released.
    """
    # A preorder that pops the last child pushed, reversed, is a postorder that
    # visits each node's children in their order, each child's subtree whole before
    # its parent: a node's children are then the last entries of ``kept``.
    order: list[Node] = []
    stack = [top]
    while stack:
        s = stack.pop()
        order.append(s)
        stack.extend(s.children.values())
    out: list[_Snap] = []
    kept: list[int] = []  # 1 per visited node that was kept, else 0
    for s in reversed(order):
        dims = None
        for k, v in node_dims(s).items():
            if any(v):
                if dims is None:
                    dims = {}
                dims[k] = v[:]
        n = len(s.children)
        if n:
            nk = sum(kept[-n:])
            del kept[-n:]
        else:
            nk = 0
        if nk or dims or s.entries or s is top:
            out.append((s.name, s.path, s.entries, dims, nk))
            kept.append(1)
        else:
            kept.append(0)
    return out


def build_nodes(snaps: list[_Snap], make_node: Callable[..., Any]) -> Any:
    """The report nodes of a snapshot; returns the top node.

    ``make_node(name, path, entries, self_usage, usage, children, breakdown)``. Usage
    objects are frozen, so one is shared where the numbers are the same: a scope with
    one dimension has it as its own usage, a scope without children has its own
    usage as its inclusive one.
    """
    done: list[tuple[str, Any, list[int] | tuple[int, ...]]] = []
    for name, path, entries, dims, nk in snaps:
        own: list[int] | tuple[int, ...]
        incl: list[int] | tuple[int, ...]
        if dims is None:
            own, self_usage, breakdown = _ZEROS, _NO_USAGE, {}
        elif len(dims) == 1:
            for key, own in dims.items():
                self_usage = usage_from_acc(own)
                breakdown = {key: self_usage}
        else:
            breakdown = {}
            own = _ZEROS
            for key, acc in dims.items():
                breakdown[key] = usage_from_acc(acc)
                own = list(map(add, own, acc))
            self_usage = usage_from_acc(own)
        children = {}
        if nk:
            incls = [own]
            for kid_name, kid, kid_incl in done[-nk:]:
                children[kid_name] = kid
                incls.append(kid_incl)
            del done[-nk:]
            incl = list(map(sum, zip(*incls, strict=True)))  # column sums, in C
            usage = usage_from_acc(incl)
        else:
            incl, usage = own, self_usage
        node = make_node(name, path, entries, self_usage, usage, children, breakdown)
        done.append((name, node, incl))
    return done[-1][1]
