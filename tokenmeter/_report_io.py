"""Reports to and from JSON-ready data: the file layout, and checking every field of a file.

Layout (``schema_version`` 2): the tree is a flat list ``nodes``, depth first, each
node naming its ``parent`` by index, so a file of any depth is read and written
without recursion. Version 1 files (a nested ``tree``) are still read. A file that
is not a report, or holds a wrong, negative or inconsistent value, raises
ValueError naming the place in the file (``nodes[3].usage.input_tokens``).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Mapping
from typing import Any

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
from ._check import short
from ._pricing import prices_info
from ._record import MAX_TOKENS, CallRecord, path_of
from ._unattributed import UNATTRIBUTED
from ._usage import usage_from_acc
from ._version import __version__

#: A call's dimensions: (model, provider, module, operation).
DimKey = tuple[Any, Any, Any, Any]
#: Builds a report node: (name, path, entries, self_usage, usage, children, breakdown).
MakeNode = Callable[..., Any]

SCHEMA = "tokenmeter.report"
SCHEMA_VERSION = 2

#: Metadata kept from a file, with the types they may have.
META_TYPES: dict[str, tuple[type, ...]] = {
    "tokenmeter_version": (str,),
    "created_at": (str,),
    "started_at": (str,),
    "ended_at": (str,),
    "prices": (dict,),
    "records_kept": (bool,),
    "error": (str,),
    "unattributed": (dict,),
}

_USAGE_INTS = (
    ("calls", CALLS),
    ("input_tokens", INPUT),
    ("cache_read_tokens", CACHE_READ),
    ("cache_write_tokens", CACHE_WRITE),
    ("output_tokens", OUTPUT),
    ("reasoning_tokens", REASONING),
    ("unpriced_calls", UNPRICED),
    ("failed_calls", FAILED),
    ("estimated_calls", ESTIMATED),
)

#: Largest total cost a file may hold (far above any real spend; keeps sums floats).
MAX_TOTAL_COST_USD = 1e15
#: Bound of a count in a usage of a file: sums of calls of up to 2**63 tokens each,
#: as a report of such calls writes them (a bound, so a file cannot hold any integer).
MAX_SUM = MAX_TOKENS * MAX_TOKENS


# -- writing ---------------------------------------------------------------------------


def node_entry(node: Any, parent: int | None) -> dict[str, Any]:
    """One node of the flat ``nodes`` list."""
    d: dict[str, Any] = {"name": node.name, "parent": parent}
    if parent is None:
        d["path"] = list(node.path)
    d["entries"] = node.entries
    d["usage"] = node.usage.to_dict()
    d["self_usage"] = node.self_usage.to_dict()
    d["breakdown"] = [
        {"model": k[0], "provider": k[1], "module": k[2], "operation": k[3], "usage": u.to_dict()}
        for k, u in node.breakdown.items()
    ]
    return d


def flat_nodes(root: Any) -> list[dict[str, Any]]:
    """The tree below report node ``root`` as the flat ``nodes`` list (depth first)."""
    out: list[dict[str, Any]] = []
    stack: list[tuple[Any, int | None]] = [(root, None)]
    while stack:
        node, parent = stack.pop()
        index = len(out)
        out.append(node_entry(node, parent))
        stack.extend((c, index) for c in reversed(list(node.children.values())))
    return out


# -- reading ---------------------------------------------------------------------------

#: Bytes read first, to refuse at once a file that cannot be a report (a gigabyte of zeros).
_HEAD = 1 << 16


def read_report_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a report file; ValueError at once if they cannot start a JSON object.

    A file whose first non-blank byte is not ``{`` (or ``[``, which the checks after
    reading explain better) is refused before the rest of it is read.
    """
    with open(path, "rb") as f:
        head = f.read(_HEAD)
        body = head.lstrip(b" \t\r\n")
        if body[:1] not in (b"{", b"[", b""):
            at = len(head) - len(body)
            raise ValueError(f"it does not start with '{{': byte {at} is 0x{body[0]:02x}")
        return head + f.read()


def usage_acc(value: object, where: str) -> list[int]:
    """A usage object of a file as an accumulator, every field checked."""
    if type(value) is not dict and not isinstance(value, Mapping):  # dict: no ABC check
        raise ValueError(f"{where} must be an object, got {_kind(value)}")
    acc = [0] * ACC_SIZE
    get = value.get
    for name, index in _USAGE_INTS:
        v = get(name, 0)
        if type(v) is not int or not 0 <= v < MAX_SUM:
            raise ValueError(f"{where}.{name} must be a non-negative integer, got {short(v)}")
        acc[index] = v
    cost = get("cost_usd", 0.0)
    if (
        isinstance(cost, bool)
        or not isinstance(cost, (int, float))
        or not (0 <= cost <= MAX_TOTAL_COST_USD)  # NaN fails this too
    ):
        raise ValueError(
            f"{where}.cost_usd must be a non-negative finite number, got {short(cost)}"
        )
    acc[COST] = cost_to_units(float(cost))
    for name, index in (
        ("unpriced_calls", UNPRICED),
        ("failed_calls", FAILED),
        ("estimated_calls", ESTIMATED),
    ):
        if acc[index] > acc[CALLS]:
            raise ValueError(f"{where}.{name} ({acc[index]}) must not exceed calls ({acc[CALLS]})")
    if acc[CACHE_READ] + acc[CACHE_WRITE] > acc[INPUT]:
        raise ValueError(
            f"{where}: cache_read_tokens + cache_write_tokens must not exceed input_tokens"
        )
    if acc[REASONING] > acc[OUTPUT]:
        raise ValueError(f"{where}.reasoning_tokens must not exceed output_tokens")
    return acc


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


class _Flat:
    """A file's nodes, flattened, with how to name each one's place in the file."""

    def __init__(self) -> None:
        self.nodes: list[Mapping[str, Any]] = []
        self.parents: list[int | None] = []
        self.labels: list[tuple[int | None, str]] = []  # (label of, suffix): built on demand

    def add(
        self, node: Mapping[str, Any], parent: int | None, label: tuple[int | None, str]
    ) -> int:
        self.nodes.append(node)
        self.parents.append(parent)
        self.labels.append(label)
        return len(self.nodes) - 1

    def where(self, i: int) -> str:
        parts: list[str] = []
        j: int | None = i
        while j is not None:
            up, suffix = self.labels[j]
            parts.append(suffix)
            j = up
        return "".join(reversed(parts))


def _flat_v2(data: Mapping[str, Any]) -> _Flat:
    nodes = data.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise ValueError(f"nodes must be a non-empty list, got {short(nodes)}")
    flat = _Flat()
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        if type(node) is not dict and not isinstance(node, Mapping):
            raise ValueError(f"{where} must be an object, got {_kind(node)}")
        parent = node.get("parent")
        if i == 0:
            if parent is not None:
                raise ValueError(f"{where}.parent must be null (the first node is the top)")
        elif type(parent) is not int or not 0 <= parent < i:
            raise ValueError(
                f"{where}.parent must be the index of an earlier node, got {short(parent)}"
            )
        flat.add(node, parent, (None, where))
    return flat


def _flat_v1(data: Mapping[str, Any]) -> _Flat:
    tree = data.get("tree")
    if not isinstance(tree, Mapping):
        raise ValueError(f"tree must be an object, got {_kind(tree)}")
    flat = _Flat()
    stack: list[tuple[object, int | None, tuple[int | None, str]]] = [(tree, None, (None, "tree"))]
    while stack:
        node, parent, label = stack.pop()
        if not isinstance(node, Mapping):
            where = flat.where(label[0]) if label[0] is not None else ""
            raise ValueError(f"{where}{label[1]} must be an object, got {_kind(node)}")
        i = flat.add(node, parent, label)
        kids = node.get("children", [])
        if not isinstance(kids, list):
            raise ValueError(f"{flat.where(i)}.children must be a list, got {_kind(kids)}")
        stack.extend((c, i, (i, f".children[{n}]")) for n, c in reversed(list(enumerate(kids))))
    return flat


def report_parts(
    data: object, make_node: MakeNode
) -> tuple[Any, dict[str, Any], list[CallRecord], int]:
    """The parts of a report read from `Report.to_dict` output (versions 1 and 2).

    Returns (top node, meta, records, records dropped); every field is checked.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a report must be a JSON object, got {_kind(data)}")
    if data.get("schema") != SCHEMA:
        raise ValueError(f"not a tokenmeter report (schema={short(data.get('schema'))})")
    version = data.get("schema_version")
    if type(version) is not int or version < 1:
        raise ValueError(f"schema_version must be a positive integer, got {short(version)}")
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"report schema_version {version!r} is newer than this tokenmeter "
            f"understands ({SCHEMA_VERSION}); upgrade tokenmeter"
        )
    flat = _flat_v2(data) if version >= 2 else _flat_v1(data)
    n = len(flat.nodes)
    # Paths: the top's from the file, the others built from their parents' names.
    paths: list[tuple[str, ...]] = []
    kids: list[dict[str, int]] = [{} for _ in range(n)]
    own: list[list[int]] = []
    incl: list[list[int]] = []
    entries: list[int] = []
    breakdowns: list[dict[DimKey, list[int]]] = []
    for i, node in enumerate(flat.nodes):
        where = flat.where(i)
        parent = flat.parents[i]
        name = node.get("name")
        if parent is None:
            path = path_of(node.get("path", []), f"{where}.path")
            if name != (path[-1] if path else ""):
                raise ValueError(
                    f"{where}.name must be the last name of its path, got {short(name)}"
                )
        else:
            if not isinstance(name, str) or not name:
                raise ValueError(f"{where}.name must be a non-empty string, got {short(name)}")
            if name in kids[parent]:
                raise ValueError(f"{where}.name {name!r} appears twice under {flat.where(parent)}")
            kids[parent][name] = i
            path = (*paths[parent], name)
        paths.append(path)
        e = node.get("entries", 0)
        if type(e) is not int or not 0 <= e < MAX_TOKENS:
            raise ValueError(f"{where}.entries must be a non-negative integer, got {short(e)}")
        entries.append(e)
        incl.append(usage_acc(node.get("usage"), f"{where}.usage"))
        self_acc = usage_acc(node.get("self_usage"), f"{where}.self_usage")
        own.append(self_acc)
        breakdowns.append(_breakdown(node.get("breakdown", []), f"{where}.breakdown"))
        total = [0] * ACC_SIZE
        for acc in breakdowns[-1].values():
            add_acc(total, acc)
        if total != self_acc:
            raise ValueError(f"{where}.self_usage must equal the sum of {where}.breakdown")
    # Inclusive = own + children's inclusive, on every node (children come after parents).
    sums = [list(a) for a in own]
    for i in range(n - 1, 0, -1):
        parent = flat.parents[i]
        assert parent is not None
        add_acc(sums[parent], incl[i])
    for i in range(n):
        if sums[i] != incl[i]:
            where = flat.where(i)
            raise ValueError(
                f"{where}.usage must equal {where}.self_usage plus its children's usage"
            )
    total_data = data.get("total")
    if total_data is not None and usage_acc(total_data, "total") != incl[0]:
        raise ValueError(f"total must equal the usage of the top node ({flat.where(0)}.usage)")
    built: list[Any] = [None] * n
    for i in range(n - 1, -1, -1):
        built[i] = make_node(
            paths[i][-1] if paths[i] else "",
            paths[i],
            entries[i],
            usage_from_acc(own[i]),
            usage_from_acc(incl[i]),
            {k: built[j] for k, j in kids[i].items()},
            {k: usage_from_acc(v) for k, v in breakdowns[i].items()},
        )
    records, dropped = _records(data)
    return built[0], _meta(data), records, dropped


def _breakdown(value: object, where: str) -> dict[DimKey, list[int]]:
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list, got {_kind(value)}")
    out: dict[DimKey, list[int]] = {}
    for n, item in enumerate(value):
        w = f"{where}[{n}]"
        if type(item) is not dict and not isinstance(item, Mapping):
            raise ValueError(f"{w} must be an object, got {_kind(item)}")
        key = []
        for field in ("model", "provider", "module", "operation"):
            v = item.get(field)
            if v is not None and (not isinstance(v, str) or not v):
                raise ValueError(f"{w}.{field} must be a non-empty string or null, got {short(v)}")
            key.append(v)
        k: DimKey = (key[0], key[1], key[2], key[3])
        if k in out:
            raise ValueError(f"{w} repeats the dimensions of an earlier line")
        out[k] = usage_acc(item.get("usage"), f"{w}.usage")
    return out


def _records(data: Mapping[str, Any]) -> tuple[list[CallRecord], int]:
    raw = data.get("records", [])
    if not isinstance(raw, list):
        raise ValueError(f"records must be a list, got {_kind(raw)}")
    records = [CallRecord.from_dict(r, f"records[{i}]") for i, r in enumerate(raw)]
    dropped = data.get("records_dropped", 0)
    if type(dropped) is not int or not 0 <= dropped < MAX_TOKENS:
        raise ValueError(f"records_dropped must be a non-negative integer, got {short(dropped)}")
    return records, dropped


def _meta(data: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, types in META_TYPES.items():
        if key not in data or data[key] is None:
            if key in data:
                meta[key] = None
            continue
        value = data[key]
        if not isinstance(value, types):
            raise ValueError(f"{key} must be {types[0].__name__} or null, got {short(value)}")
        if key.endswith("_at"):
            try:
                _dt.datetime.fromisoformat(str(value))
            except ValueError:
                raise ValueError(f"{key} must be an ISO 8601 time, got {short(value)}") from None
        meta[key] = value
    return meta


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).isoformat()


def new_meta(first: float | None, last: float | None) -> dict[str, Any]:
    return {
        "tokenmeter_version": __version__,
        "created_at": _dt.datetime.now(tz=_dt.timezone.utc).isoformat(),
        "started_at": _iso(first),
        "ended_at": _iso(last),
        "prices": prices_info(),
        **({"unattributed": dict(UNATTRIBUTED)} if UNATTRIBUTED else {}),
    }
