"""Merging reports: exact sums node by node, the union of records, prices compared."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._acc import ACC_SIZE, add_acc
from ._record import CallRecord
from ._usage import usage_from_acc, usage_to_acc
from ._version import __version__

#: A call's dimensions: (model, provider, module, operation).
DimKey = tuple[Any, Any, Any, Any]
#: Builds a report node: (name, path, entries, self_usage, usage, children, breakdown).
MakeNode = Callable[..., Any]

#: ``meta["prices"]["source"]`` of a report merged from reports priced differently.
MIXED = "mixed"

#: Fields of the price-map source that say when this process read the map, not which
#: map it read: two workers reading the same map differ only in these.
_VOLATILE = frozenset({"loaded_at"})


def merge_parts(
    reports: Sequence[Any], make_node: MakeNode
) -> tuple[Any, dict[str, Any], list[CallRecord], int]:
    """The parts of one report holding the sum of ``reports``, node by node.

    Returns (top node, meta, records, records dropped); see `Report.merge`.
    """
    top = _common_prefix([r.root.path for r in reports])
    # Per path: [entries, {dim key: acc}], in the order paths are first met.
    nodes: dict[tuple[str, ...], tuple[list[int], dict[DimKey, list[int]]]] = {}

    def slot(path: tuple[str, ...]) -> tuple[list[int], dict[DimKey, list[int]]]:
        got = nodes.get(path)
        if got is None:
            # Ancestors first, so the first-met order is a valid depth-first order.
            k = len(path) - 1
            while k > len(top) and path[:k] not in nodes:
                k -= 1
            for j in range(k, len(path)):
                nodes.setdefault(path[:j], ([0], {}))
            got = nodes[path] = ([0], {})
        return got

    for r in reports:
        for node in r.walk():
            entries, dims = slot(node.path)
            entries[0] += node.entries
            for key, u in node.breakdown.items():
                acc = dims.get(key)
                if acc is None:
                    acc = dims[key] = [0] * ACC_SIZE
                add_acc(acc, usage_to_acc(u))
    slot(top)

    # Children lists, then inclusive sums bottom-up (no recursion: any depth).
    kids: dict[tuple[str, ...], list[tuple[str, ...]]] = {p: [] for p in nodes}
    for p in nodes:
        if len(p) > len(top):
            kids[p[:-1]].append(p)
    own = {p: _sum(d.values()) for p, (_, d) in nodes.items()}
    incl = {p: list(a) for p, a in own.items()}
    for p in sorted(nodes, key=len, reverse=True):
        if len(p) > len(top):
            add_acc(incl[p[:-1]], incl[p])
    built: dict[tuple[str, ...], Any] = {}
    for p in sorted(nodes, key=len, reverse=True):
        entries, dims = nodes[p]
        built[p] = make_node(
            p[-1] if p else "",
            p,
            entries[0],
            usage_from_acc(own[p]),
            usage_from_acc(incl[p]),
            {c[-1]: built[c] for c in kids[p]},
            {k: usage_from_acc(v) for k, v in dims.items()},
        )
    records: list[CallRecord] = []
    for r in reports:
        records.extend(r.records)
    records.sort(key=lambda rec: rec.timestamp)  # stable: equal times keep argument order
    return (
        built[top],
        merge_meta([r.meta for r in reports]),
        records,
        sum(r.records_dropped for r in reports),
    )


def _sum(accs: Iterable[list[int]]) -> list[int]:
    out = [0] * ACC_SIZE
    for a in accs:
        add_acc(out, a)
    return out


def _common_prefix(paths: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    if not paths:
        return ()
    first = paths[0]
    n = min(len(p) for p in paths)
    for i in range(n):
        if any(p[i] != first[i] for p in paths):
            return first[:i]
    return first[:n]


def merge_meta(metas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The metadata of a merged report: time span, price sources, records kept."""
    created = [m.get("created_at") for m in metas]
    started = [m.get("started_at") for m in metas]
    ended = [m.get("ended_at") for m in metas]
    out: dict[str, Any] = {
        "tokenmeter_version": __version__,
        "created_at": _extreme(created, max),
        "started_at": _extreme(started, min),
        "ended_at": _extreme(ended, max),
        "prices": merge_prices([m.get("prices") for m in metas]),
        "records_kept": all(bool(m.get("records_kept")) for m in metas),
    }
    errors = sorted({str(m["error"]) for m in metas if m.get("error")})
    if errors:
        out["error"] = "; ".join(errors)
    unattributed: dict[str, Any] = {}
    for m in metas:
        if isinstance(m.get("unattributed"), Mapping):
            unattributed.update(m["unattributed"])
    if unattributed:
        out["unattributed"] = unattributed
    return out


def _extreme(stamps: Sequence[object], pick: Any) -> str | None:
    """The earliest or latest of some ISO 8601 times (None when there are none)."""
    parsed = []
    for s in stamps:
        if isinstance(s, str):
            try:
                t = _dt.datetime.fromisoformat(s)
            except ValueError:
                continue
            if t.tzinfo is None:
                t = t.replace(tzinfo=_dt.timezone.utc)
            parsed.append((t, s))
    if not parsed:
        return None
    return str(pick(parsed)[1])


def _canonical(prices: Mapping[str, Any], *, volatile: bool) -> str:
    data = dict(prices)
    if not volatile and isinstance(data.get("cost_map"), Mapping):
        data["cost_map"] = {k: v for k, v in data["cost_map"].items() if k not in _VOLATILE}
    return json.dumps(data, sort_keys=True, default=str)


def price_variants(prices: object) -> list[dict[str, Any]]:
    """The distinct price sources behind one report's ``meta["prices"]``."""
    if not isinstance(prices, Mapping):
        return []
    if prices.get("source") == MIXED:
        return [dict(v) for v in prices.get("variants", ()) if isinstance(v, Mapping)]
    return [dict(prices)]


def merge_prices(all_prices: Sequence[object]) -> dict[str, Any] | None:
    """The prices of merged reports: the one source they share, or every source, flagged.

    Two sources that differ only in when the price map was read count as one. When
    they differ otherwise, the result is ``{"source": "mixed", "differences": [...],
    "variants": [...]}``: ``differences`` names what differs (``litellm_version``,
    ``cost_map.source``, ``custom.<model>``, ...). The result does not depend on the
    order or grouping of the merge.
    """
    distinct: dict[str, dict[str, Any]] = {}
    for p in all_prices:
        for v in price_variants(p):
            key = _canonical(v, volatile=False)
            old = distinct.get(key)
            # Of two reads of the same map, keep one fixed choice (the smallest).
            if old is None or _canonical(v, volatile=True) < _canonical(old, volatile=True):
                distinct[key] = v
    if not distinct:
        return None
    variants = [distinct[k] for k in sorted(distinct)]
    if len(variants) == 1:
        return variants[0]
    return {"source": MIXED, "differences": _differences(variants), "variants": variants}


def _differences(variants: Sequence[Mapping[str, Any]]) -> list[str]:
    flat = [_flatten(v) for v in variants]
    keys = sorted({k for f in flat for k in f})
    return [
        k
        for k in keys
        if not k.startswith(tuple(f"cost_map.{v}" for v in _VOLATILE))
        and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1
    ]


def _flatten(prices: Mapping[str, Any]) -> dict[str, Any]:
    """Price info with `cost_map` and `custom` flattened: `cost_map.source`, `custom.m`."""
    out: dict[str, Any] = {}
    for k, v in prices.items():
        if k in ("cost_map", "custom") and isinstance(v, Mapping):
            for k2, v2 in v.items():
                out[f"{k}.{k2}"] = v2
        else:
            out[k] = v
    return out
