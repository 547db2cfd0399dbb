"""A meter's tree as plain data, and that data added into another meter's tree.

Usage made in another process (a pool worker, a Ray task) is counted there in a
meter of its own; `export_tree` turns that meter into plain, picklable data, and
`add_tree` adds the data into the meter the work was started from: per node the
per-dimension tallies and entries, the time span and (when kept) the records.
Sums are exact (integer tallies), and the budget tallies of every node on the
way are raised by what lands below them, as if the calls had been made here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._acc import ACC_SIZE, CALLS, add_acc
from ._tree import DimKey

if TYPE_CHECKING:
    from ._tree import Node as Scope
    from ._tree import Tree as Meter

#: One node: (entries, {dimension key: tally}, {child name: node}).
Node = tuple[int, dict[DimKey, list[int]], dict[str, "Node"]]

#: A whole tree: (root node or None when nothing happened, first timestamp, last
#: timestamp, records as tuples of CallRecord's fields or None, records seen).
Tree = tuple[Node | None, float | None, float | None, list[tuple[Any, ...]] | None, int]


def _export_node_locked(s: Scope) -> Node | None:
    kids: dict[str, Node] = {}
    for name, child in s.children.items():
        k = _export_node_locked(child)
        if k is not None:
            kids[name] = k
    dims = {key: list(acc) for key, acc in s._dims.items() if any(acc)}
    if not (s.entries or dims or kids):
        return None
    return (s.entries, dims, kids)


def export_tree(meter: Meter) -> Tree:
    """The whole of ``meter``'s tree as plain data (see `Tree`); nodes with nothing are left out."""
    with meter._lock:
        meter._settle_locked()
        root = _export_node_locked(meter.root)
        recs = meter._records
        records = None if recs is None else [_record_fields(r) for r in recs]
        return (root, meter._first_ts, meter._last_ts, records, meter._records_seen)


def _record_fields(rec: Any) -> tuple[Any, ...]:
    import attrs

    values = (getattr(rec, a.name) for a in attrs.fields(type(rec)))
    # attributes and metadata are read-only mapping proxies, which do not pickle.
    return tuple(dict(v) if isinstance(v, Mapping) else v for v in values)


def _add_node_locked(s: Scope, node: Node) -> list[int]:
    """Add ``node`` into scope ``s``; returns the inclusive tally added."""
    entries, dims, kids = node
    added = [0] * ACC_SIZE
    s.entries += entries
    for key, acc in dims.items():
        mine = s._dims.get(key)
        if mine is None:
            mine = s._dims[key] = [0] * ACC_SIZE
        add_acc(mine, acc)
        add_acc(added, acc)
    for name, kid in kids.items():
        add_acc(added, _add_node_locked(s._child_locked(name), kid))
    if s._incl is not None:
        add_acc(s._incl, added)
        s._started += added[CALLS]
    return added


def add_tree(meter: Meter, tree: Tree) -> None:
    """Add ``tree`` (from `export_tree` of another meter) into ``meter``, node by node.

    Nodes are matched by path from the root, made where missing. Budget tallies of
    the nodes on the way count the added calls as started and spent.
    """
    root, first, last, records, seen = tree
    rebuilt = None
    if records and meter._records is not None:
        from ._record import CallRecord

        rebuilt = [CallRecord(*fields) for fields in records]
    with meter._lock:
        if root is not None:
            _add_node_locked(meter.root, root)
        if first is not None and (meter._first_ts is None or first < meter._first_ts):
            meter._first_ts = first
        if last is not None and (meter._last_ts is None or last > meter._last_ts):
            meter._last_ts = last
        if meter._records is not None and records is not None:
            meter._records_seen += seen
            if rebuilt:
                meter._records.extend(rebuilt)
