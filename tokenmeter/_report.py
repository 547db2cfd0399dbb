"""Reports: a consistent snapshot of a call tree, its table, breakdowns and JSON export."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

import attrs

from ._drain import drain_queued
from ._errors import log_internal_error
from ._frame import Frame
from ._kept import records_of
from ._record import CallRecord
from ._report_io import SCHEMA as SCHEMA
from ._report_io import SCHEMA_VERSION as SCHEMA_VERSION
from ._report_io import new_meta
from ._report_snap import snap_locked
from ._subtree import add_record
from ._tree import DimKey, Node, Tree, child_locked, kept_locked, settle_locked, tree_lock
from ._usage import ACC_SIZE, Usage, add_acc, usage_from_acc, usage_to_acc

NONE_LABEL = "(none)"


@attrs.frozen
class Projection:
    """What ``entries`` entries of a scope would cost, scaled from its measured entries."""

    measured_entries: int
    measured: Usage
    entries: int
    cost_usd: float
    total_tokens: float
    calls: float

    def describe(self, name: str = "entries") -> str:
        """One sentence: 'these 25 samples cost $X; 1,000 would cost about $Y'.

        With unpriced calls among the measured ones the dollar figures are lower
        bounds, and the sentence says so.
        """
        unpriced = self.measured.unpriced_calls
        more = f" or more ({unpriced:,} unpriced calls)" if unpriced else ""
        return (
            f"these {self.measured_entries:,} {name} cost ${self.measured.cost_usd:.6f}{more}; "
            f"{self.entries:,} would cost about ${self.cost_usd:.4f}{more} "
            f"({self.total_tokens:,.0f} tokens, {self.calls:,.0f} calls)"
        )


@attrs.frozen(weakref_slot=False)  # no weak references: see `_NewReportNode`
class ReportNode:
    """One scope in a report: ``usage`` is inclusive, ``self_usage`` its own calls only."""

    name: str
    path: tuple[str, ...]
    entries: int
    self_usage: Usage
    usage: Usage
    children: Mapping[str, ReportNode]
    breakdown: Mapping[DimKey, Usage]

    @property
    def cost_per_entry(self) -> float | None:
        """Inclusive cost divided by entries (None when never entered)."""
        return self.usage.cost_usd / self.entries if self.entries else None

    @property
    def tokens_per_entry(self) -> float | None:
        """Inclusive tokens divided by entries (None when never entered)."""
        return self.usage.total_tokens / self.entries if self.entries else None

    def project(self, entries: int) -> Projection:
        """Scale this scope's measured usage per entry up to ``entries`` entries."""
        if isinstance(entries, bool) or not isinstance(entries, int) or entries < 0:
            raise ValueError(f"entries must be a non-negative integer, got {entries!r}")
        if not self.entries:
            raise ValueError(f"scope {'/'.join(self.path)!r} has no entries to scale from")
        f = entries / self.entries
        u = self.usage
        return Projection(self.entries, u, entries, u.cost_usd * f, u.total_tokens * f, u.calls * f)

    def child(self, name: str) -> ReportNode:
        """The child scope ``name`` (KeyError naming the children there are)."""
        try:
            return self.children[name]
        except KeyError:
            where = "/".join(self.path) or "<root>"
            raise KeyError(
                f"no scope {name!r} under {where!r}; children: {sorted(self.children)}"
            ) from None

    def walk(self) -> Iterator[ReportNode]:
        """This node and its descendants, depth first (no recursion: any depth)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(list(node.children.values())))

    def to_dict(self) -> dict[str, Any]:
        """This node and its subtree as nested JSON-ready dicts (``children`` lists).

        A report file holds its tree as a flat list instead (see `Report.to_dict`):
        nested data as deep as a deep tree is more than JSON readers accept.
        """
        from ._report_io import node_entry

        out: dict[str, Any] = {}
        stack: list[tuple[ReportNode, dict[str, Any]]] = [(self, out)]
        while stack:
            node, d = stack.pop()
            d.update(node_entry(node, None))
            d.pop("parent")
            d["path"] = list(node.path)
            d["children"] = [{} for _ in node.children]
            stack.extend(zip(node.children.values(), d["children"], strict=True))
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReportNode:
        """Rebuild a node (and subtree) from `to_dict` output; ValueError naming a bad field."""
        from ._report_io import SCHEMA, report_parts

        return report_parts({"schema": SCHEMA, "schema_version": 1, "tree": d}, cls)[0]  # type: ignore[no-any-return]


class _NewReportNode:
    """`ReportNode`'s layout, for `snap_locked`: a report builds one node per scope, and
    plain slot stores, then the class, are faster than attrs' frozen ``__init__``."""

    __slots__ = ("breakdown", "children", "entries", "name", "path", "self_usage", "usage")


def _checked_node_layout() -> type[_NewReportNode] | None:
    """`_NewReportNode` if a node built from it is what `ReportNode` builds, else None."""
    args: tuple[Any, ...] = ("n", ("n",), 1, Usage(), Usage(calls=1), {}, {})
    try:
        if sorted(_NewReportNode.__slots__) == sorted(a.name for a in attrs.fields(ReportNode)):
            built: Any = object.__new__(_NewReportNode)
            names = [a.name for a in attrs.fields(ReportNode)]
            for name, value in zip(names, args, strict=True):
                setattr(built, name, value)
            built.__class__ = ReportNode
            if type(built) is ReportNode and built == ReportNode(*args):
                return _NewReportNode
    except TypeError:  # an interpreter that refuses the class assignment
        pass
    return None


_NODE_LAYOUT = _checked_node_layout()


class Report:
    """A consistent snapshot of a meter's tree (or of one scope's subtree).

    ``total`` is the whole tree's usage; ``node(*names)`` finds one scope;
    ``by_model()`` and friends break usage down by dimension; ``print()`` shows
    the tree as a table; ``to_dict()``/``save()``/``load()`` export and import.
    """

    def __init__(
        self,
        root: ReportNode,
        meta: Mapping[str, Any],
        records: Iterable[CallRecord] = (),
        records_dropped: int = 0,
    ) -> None:
        self.root = root
        self.meta: dict[str, Any] = dict(meta)
        self.records: tuple[CallRecord, ...] = tuple(records)
        self.records_dropped = records_dropped

    @property
    def error(self) -> str | None:
        """Why this report is not a true picture of the meter, or None when it is.

        Set when tokenmeter failed to take the report (an internal error, logged on
        the ``tokenmeter`` logger). Such a report shows the error instead of a
        table, holds no numbers, and `save` refuses to write it.
        """
        error = self.meta.get("error")
        return error if isinstance(error, str) else None

    # -- building -----------------------------------------------------------------

    @classmethod
    def unavailable(cls, reason: str, path: tuple[str, ...] = ()) -> Report:
        """A report that could not be taken: `error` says why; it has no numbers to show."""
        name = path[-1] if path else ""
        meta = new_meta(None, None)
        meta["error"] = f"tokenmeter could not take this report ({reason}); see its log"
        return cls(ReportNode(name, path, 0, Usage(), Usage(), {}, {}), meta)

    @classmethod
    def _take(cls, meter: Tree, top: Node) -> Report:
        drain_queued()
        with tree_lock(meter):
            settle_locked(meter)
            root = snap_locked(top, ReportNode, _NODE_LAYOUT)
            records, seen, first, last = kept_locked(meter)
            recs = list(records) if records is not None else []
            kept = records is not None
            # Dropped by the max_records bound, meter-wide (whose they were is not known).
            dropped = max(0, seen - len(recs)) if kept else 0
        recs = records_of(recs)  # kept rows made records, outside the lock
        if top.path:
            recs = [r for r in recs if r.path[: len(top.path)] == top.path]
        meta = new_meta(first, last)
        meta["records_kept"] = kept
        return cls(root, meta, recs, dropped)

    @classmethod
    def empty(cls) -> Report:
        """A report with nothing in it."""
        root = ReportNode("", (), 0, Usage(), Usage(), {}, {})
        return cls(root, new_meta(None, None))

    @classmethod
    def from_records(cls, records: Iterable[CallRecord | Mapping[str, Any]]) -> Report:
        """A report of these records, each placed on the scope its ``path`` names.

        Scopes made this way have no entries (records do not say how often a
        scope was entered).
        """
        meter = Tree(keep_records=True, max_records=2**62)
        for r in records:
            rec = r if isinstance(r, CallRecord) else CallRecord.from_dict(r)
            scope = meter.root
            with tree_lock(meter):
                for part in rec.path:
                    scope = child_locked(scope, part)
            frame = Frame(scope, None, None, {}, (), None)
            add_record(meter, frame, rec, reserved=True)
        return snapshot(meter, meter.root)

    # -- reading ------------------------------------------------------------------

    @property
    def total(self) -> Usage:
        """Usage over the whole tree."""
        return self.root.usage

    def node(self, *names: str) -> ReportNode:
        """The scope at this path below the report's top (no names: the top itself)."""
        n = self.root
        for name in names:
            n = n.child(name)
        return n

    def walk(self) -> Iterator[ReportNode]:
        """Every node, depth first, the top first."""
        return self.root.walk()

    def find_all(self, name: str | Sequence[str]) -> list[ReportNode]:
        """Every node whose name is ``name``, or whose path ends with it, depth first.

        ``name`` is a scope name (``"sub_agent"``), a path suffix written with
        ``/`` (``"main/sub_agent"``), or a sequence of names (``("main", "sub_agent")``).
        """
        if isinstance(name, str):
            if not name:
                raise ValueError("find() needs a non-empty name or path suffix")
            tail = "/" + name
            return [
                n
                for n in self.walk()
                if n.name == name or ("/" + "/".join(n.path) + "/").endswith(tail + "/")
            ]
        parts = tuple(name)
        if not parts or not all(isinstance(p, str) for p in parts):
            raise ValueError(
                f"find() needs a name, a path suffix or a sequence of names, got {name!r}"
            )
        k = len(parts)
        return [n for n in self.walk() if n.path[-k:] == parts and len(n.path) >= k]

    def find(self, name: str | Sequence[str]) -> ReportNode:
        """The one node anywhere in the tree named ``name`` or whose path ends with it.

        ``KeyError`` when no node matches, or when several do (it names their paths:
        pass more of the path, e.g. ``"planner/search"``). See `find_all`.
        """
        found = self.find_all(name)
        if len(found) == 1:
            return found[0]
        shown = name if isinstance(name, str) else "/".join(name)
        if not found:
            raise KeyError(f"no scope named {shown!r} or whose path ends with it in this report")
        paths = ", ".join(repr("/".join(n.path)) for n in found[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        raise KeyError(f"{len(found)} scopes match {shown!r}: {paths}{more}; pass more of the path")

    def merge(self, *others: Report) -> Report:
        """A new report holding this report's numbers plus those of ``others``, exactly.

        Also ``tm.Report.merge(a, b, c)``. Nodes with the same path add up: entries,
        own and inclusive usage, and the breakdown by model, provider, module and
        operation (costs are summed as exact integers, so the order and grouping of
        merges never change a number). Records are pooled, oldest first; the time span
        runs from the earliest start to the latest end. Reports priced from different
        sources merge with ``meta["prices"]["source"] == "mixed"``, naming the
        differences; the report's text says so. Reports of different scopes merge
        under the deepest path they share.
        """
        from ._merge import merge_parts

        for i, r in enumerate(others, 1):
            if not isinstance(r, Report):
                raise TypeError(f"Report.merge takes reports; argument {i} is {type(r).__name__}")
        return Report(*merge_parts((self, *others), ReportNode))

    def _by(self, index: int, none_label: str) -> dict[str, Usage]:
        out: dict[str, list[int]] = {}
        for node in self.walk():
            for key, u in node.breakdown.items():
                value = key[index]
                label = value if value is not None else none_label
                add_acc(out.setdefault(label, [0] * ACC_SIZE), usage_to_acc(u))
        return {
            k: usage_from_acc(v)
            for k, v in sorted(out.items(), key=lambda kv: (-kv[1][6], -kv[1][1] - kv[1][4]))
        }

    def by_model(self) -> dict[str, Usage]:
        """Usage per model, costliest first."""
        return self._by(0, NONE_LABEL)

    def by_provider(self) -> dict[str, Usage]:
        """Usage per provider, costliest first."""
        return self._by(1, NONE_LABEL)

    def by_module(self) -> dict[str, Usage]:
        """Usage per module dimension, costliest first (``(none)`` for calls with none)."""
        return self._by(2, NONE_LABEL)

    def by_operation(self) -> dict[str, Usage]:
        """Usage per operation dimension, costliest first (``(none)`` for calls with none)."""
        return self._by(3, NONE_LABEL)

    # -- showing ------------------------------------------------------------------

    def format(
        self,
        detailed: bool = False,
        *,
        width: int | None = None,
        by: str | Sequence[str] | bool | None = None,
        per_entry: bool = False,
    ) -> str:
        """The report as text (what ``print()`` shows; ``str()`` is ``format()``).

        ``detailed=True`` adds a line per model under each scope. ``width`` (80 by
        default, at least 64) widens the table and its name column. ``by`` adds
        breakdown tables: ``"model"``, ``"provider"``, ``"module"``, ``"operation"``,
        several of them, or ``"all"``. ``per_entry=True`` adds the cost and tokens
        per entry of each scope entered more than once, and what 1,000 entries
        would cost. A bad option raises ValueError naming it.
        """
        from ._format import format_report

        return format_report(self, detailed, width=width, by=by, per_entry=per_entry)

    def print(
        self,
        detailed: bool = False,
        file: IO[str] | None = None,
        *,
        width: int | None = None,
        by: str | Sequence[str] | bool | None = None,
        per_entry: bool = False,
    ) -> None:
        """Print the report's text (see `format` for the options) to ``file`` or stdout."""
        from ._format import print_text

        text = self.format(detailed, width=width, by=by, per_entry=per_entry)
        print_text(text, file if file is not None else sys.stdout)

    def __str__(self) -> str:
        return self.format(False)

    def __repr__(self) -> str:
        t = self.total
        return (
            f"<tokenmeter.Report calls={t.calls} tokens={t.total_tokens} "
            f"cost_usd={t.cost_usd:.6f} unpriced={t.unpriced_calls}>"
        )

    # -- export -------------------------------------------------------------------

    def to_dict(self, include_records: bool = False) -> dict[str, Any]:
        """The report as JSON-ready data (schema: docs/reports.md); the tree as flat ``nodes``."""
        from ._report_io import flat_nodes

        d: dict[str, Any] = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION}
        d.update(self.meta)
        d["total"] = self.total.to_dict()
        d["by_model"] = {k: u.to_dict() for k, u in self.by_model().items()}
        d["by_provider"] = {k: u.to_dict() for k, u in self.by_provider().items()}
        d["by_module"] = {k: u.to_dict() for k, u in self.by_module().items()}
        d["by_operation"] = {k: u.to_dict() for k, u in self.by_operation().items()}
        d["nodes"] = flat_nodes(self.root)
        if include_records:
            d["records"] = [r.to_dict() for r in self.records]
            d["records_dropped"] = self.records_dropped
        return d

    def to_json(self, include_records: bool = False, indent: int | None = 2) -> str:
        """The report as strict JSON text (a NaN in records' metadata is a ValueError)."""
        from ._atomic import dumps_json

        return dumps_json(self.to_dict(include_records), indent=indent, default=str)

    def save(self, path: str | os.PathLike[str], include_records: bool = False) -> None:
        """Write the report as JSON atomically: a crash mid-write leaves the old file.

        See `tokenmeter._atomic.write_atomic`: the file gets the mode a plain
        ``open()`` would give it, saving onto a symbolic link writes the link's
        target, and a missing directory is a FileNotFoundError naming it. A report
        that could not be taken (`error`) is not written: RuntimeError says why.
        """
        from ._atomic import write_atomic

        if self.error is not None:
            raise RuntimeError(f"not saving a report with no numbers: {self.error}")
        write_atomic(path, self.to_json(include_records) + "\n")

    def to_html(self, title: str = "tokenmeter report") -> str:
        """The report as one self-contained, offline HTML page (see docs/cli.md)."""
        from ._html import to_html

        return to_html(self, title)

    def save_html(self, path: str | os.PathLike[str], title: str = "tokenmeter report") -> None:
        """Write `to_html` to ``path`` atomically."""
        from ._html import save_html

        save_html(self, os.fspath(path), title)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Rebuild a report from `to_dict` output, checking every field.

        A value of the wrong type, sign or version, or numbers that do not add up,
        raise ValueError naming the place in the data (``nodes[3].usage.input_tokens``).
        """
        from ._report_io import report_parts

        return cls(*report_parts(data, ReportNode))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Report:
        """Read a report written by `save`; ValueError (naming the file) if it is not one."""
        from ._jsonload import DuplicateKeyError, loads_unique, no_constant
        from ._report_io import read_report_bytes

        try:
            raw = read_report_bytes(path)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: not a JSON report file ({e})") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(
                f"{os.fspath(path)}: not a JSON report file (not UTF-8 text: byte {e.start})"
            ) from None
        try:
            data = loads_unique(text, parse_constant=no_constant)
        except RecursionError:
            raise ValueError(f"{os.fspath(path)}: nested too deeply to be a report") from None
        except DuplicateKeyError as e:
            raise ValueError(f"{os.fspath(path)}: {e}") from None
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: not a JSON report file ({e})") from None
        try:
            return cls.from_dict(data)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: {e}") from None


def snapshot(meter: Tree, top: Node) -> Report:
    """A report of ``top``'s subtree; on an internal error, a report that says so."""
    try:
        return Report._take(meter, top)
    except Exception as e:
        log_internal_error("report")
        return Report.unavailable(f"{type(e).__name__}: {e}"[:300], top.path)
