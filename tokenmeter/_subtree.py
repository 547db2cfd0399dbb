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

from ._acc import ACC_SIZE, add_acc, cost_to_units
from ._drain import drain_queued
from ._tree import (
    DimKey,
    add,
    add_kept_locked,
    add_to_budget_locked,
    child_locked,
    kept_locked,
    settle_locked,
    tree_lock,
)
from ._tree import dims as node_dims

if TYPE_CHECKING:
    from ._frame import Frame
    from ._record import CallRecord
    from ._tree import Node as Scope
    from ._tree import Tree as Meter

#: One node: (index of its parent's row or -1 for the root, name, entries,
#: {dimension key: tally}). Rows are flat, parents before children, so trees of
#: any depth pickle without recursion.
Row = tuple[int, str, int, dict[DimKey, list[int]]]

#: A whole tree: (rows, empty when nothing happened; first timestamp, last
#: timestamp, records as tuples of CallRecord's fields or None, records seen).
Tree = tuple[list[Row], float | None, float | None, list[tuple[Any, ...]] | None, int]


def _export_rows_locked(top: Scope) -> list[Row]:
    """Rows of ``top``'s subtree: the nodes with entries or usage, and their ancestors."""
    order: list[tuple[Scope, int, str]] = []
    stack: list[tuple[Scope, int, str]] = [(top, -1, "")]
    while stack:
        s, parent, name = stack.pop()
        index = len(order)
        order.append((s, parent, name))
        stack.extend((c, index, n) for n, c in reversed(list(s.children.items())))
    keep = [False] * len(order)
    dims_of: list[dict[DimKey, list[int]]] = []
    for s, _parent, _name in order:
        dims_of.append({key: list(acc) for key, acc in list(node_dims(s).items()) if any(acc)})
    for i in range(len(order) - 1, -1, -1):  # children come after their parent
        s, parent, _name = order[i]
        if keep[i] or s.entries or dims_of[i]:
            keep[i] = True
            if parent >= 0:
                keep[parent] = True
    rows: list[Row] = []
    new_index = [-1] * len(order)
    for i, (s, parent, name) in enumerate(order):
        if keep[i]:
            new_index[i] = len(rows)
            rows.append((new_index[parent] if parent >= 0 else -1, name, s.entries, dims_of[i]))
    return rows


def export_tree(meter: Meter) -> Tree:
    """The whole of ``meter``'s tree as plain data (see `Tree`); nodes with nothing are left out."""
    drain_queued()
    with tree_lock(meter):
        settle_locked(meter)
        rows = _export_rows_locked(meter.root)
        recs, seen, first, last = kept_locked(meter)
        kept = None if recs is None else list(recs)
    if kept is None:
        return (rows, first, last, None, seen)
    from ._kept import records_of

    return (rows, first, last, [_record_fields(r) for r in records_of(kept)], seen)


def _record_fields(rec: Any) -> tuple[Any, ...]:
    import attrs

    values = (getattr(rec, a.name) for a in attrs.fields(type(rec)))
    # attributes and metadata are read-only mapping proxies, which do not pickle.
    return tuple(dict(v) if isinstance(v, Mapping) else v for v in values)


def _add_rows_locked(top: Scope, rows: list[Row]) -> None:
    """Add ``rows`` into ``top`` (row 0 is ``top``), raising budget tallies on the way."""
    scopes: list[Scope] = []
    added = [[0] * ACC_SIZE for _ in rows]
    for parent, name, entries, dims in rows:
        s = top if parent < 0 else child_locked(scopes[parent], name)
        scopes.append(s)
        s.entries += entries
        mine_added = added[len(scopes) - 1]
        tallies = node_dims(s)
        for key, acc in dims.items():
            mine = tallies.get(key)
            if mine is None:
                mine = tallies[key] = [0] * ACC_SIZE
            add_acc(mine, acc)
            add_acc(mine_added, acc)
    for i in range(len(rows) - 1, -1, -1):  # children come after their parent
        s, inclusive = scopes[i], added[i]
        add_to_budget_locked(s, inclusive)
        parent = rows[i][0]
        if parent >= 0:
            add_acc(added[parent], inclusive)


def add_tree(meter: Meter, tree: Tree) -> None:
    """Add ``tree`` (from `export_tree` of another meter) into ``meter``, node by node.

    Nodes are matched by path from the root, made where missing. Budget tallies of
    the nodes on the way count the added calls as started and spent.
    """
    rows, first, last, records, seen = tree
    rebuilt = None
    if records and meter.keep_records:
        from ._record import CallRecord

        rebuilt = [CallRecord(*fields) for fields in records]
    with tree_lock(meter):
        if rows:
            _add_rows_locked(meter.root, rows)
        if records is None:
            add_kept_locked(meter, first, last, 0, ())
        else:
            add_kept_locked(meter, first, last, seen, rebuilt or ())


def add_record(tree: Meter, frame: Frame, rec: CallRecord, reserved: bool) -> None:
    """Add a finished record to ``frame``'s scope (the one current when the call was made)."""
    add(
        tree,
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
