"""Kept records: the compact rows a tree keeps per call, and the `CallRecord`s they are.

A kept record (``_tree.Tree``'s) is one of:

- a `CallRecord`;
- the row ``_tree.add`` keeps for a plain manual record: ``(frame, model, provider,
  input_tokens, output_tokens, cost_usd, timestamp)``, then ``cache_read, cache_write,
  reasoning`` when any is not 0;
- the row `call_row` makes for a LiteLLM call: ``(shape, packed, call_id)``, where
  ``shape`` is ``(frame, model, provider, kind, failed, estimated, metadata items)``,
  one tuple shared by the calls alike (``_tree.kept_shapes``), and ``packed`` the
  call's cost, time, duration and token counts as bytes (`_SHORT` or `_LONG`).

A frame is never changed: a record's path, module, operation and attributes are read
from it when the record is built. A row holds only what the frame cannot give back, in
as few objects as that takes (a LiteLLM row is 145 B where its `CallRecord` is 256 B).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ._frame import Frame
from ._record import CallRecord, frozen_mapping, new_record

Kept = Any

_EMPTY = frozen_mapping(None)
_NAN = float("nan")

#: A LiteLLM row's ``packed``: ``cost_usd`` (NaN: unpriced), ``timestamp``,
#: ``duration_s``, ``input_tokens``, ``output_tokens``; `_LONG` then ``cache_read,
#: cache_write, reasoning`` (when any is not 0). Doubles and counts keep their exact values.
_SHORT, _LONG = struct.Struct("<3d2Q"), struct.Struct("<3d5Q")
_SHORT_SIZE = _SHORT.size
_pack_short, _pack_long = _SHORT.pack, _LONG.pack

#: Shapes a tree keeps at most; past that its table starts again (rows keep theirs).
MAX_SHAPES = 1024


def call_row(
    shapes: dict[tuple[Any, ...], tuple[Any, ...]],
    frame: Frame,
    kind: str,
    model: str,
    provider: str | None,
    toks: tuple[int, int, int, int, int],
    cost_usd: float | None,
    failed: bool,
    estimated: bool,
    timestamp: float,
    duration_s: float,
    call_id: Any,
    meta: Mapping[str, Any] | None,
) -> tuple[Any, ...] | None:
    """The kept row of a LiteLLM call, its shape shared through ``shapes``; None when only
    a whole `CallRecord` keeps it exactly (counts past 2**64, unhashable metadata).

    Shapes equal as tuples are shared: the metadata is tokenmeter's own, each key's
    value always of one type (never a ``1`` where another call has ``True``)."""
    i, o, cr, cw, r = toks
    c = _NAN if cost_usd is None else cost_usd
    try:
        if cr or cw or r:
            packed = _pack_long(c, timestamp, duration_s, i, o, cr, cw, r)
        else:
            packed = _pack_short(c, timestamp, duration_s, i, o)
        shape = (frame, model, provider, kind, failed, estimated, (*meta.items(),) if meta else ())
        if len(shapes) >= MAX_SHAPES:
            shapes.clear()
        return (shapes.setdefault(shape, shape), packed, call_id)
    except (struct.error, TypeError):
        return None


def kept_path(row: Kept) -> tuple[str, ...]:
    """The scope path of a kept record."""
    if type(row) is not tuple:
        return row.path  # type: ignore[no-any-return]
    return (row[0][0] if len(row) == 3 else row[0]).scope.path  # type: ignore[no-any-return]


def records_of(rows: Iterable[Kept]) -> list[CallRecord]:
    """The `CallRecord`s of kept records, equal to those the calls made.

    Called without the tree's lock: a list of the rows taken under it is enough.
    """
    out: list[CallRecord] = []
    append = out.append
    for row in rows:
        if type(row) is not tuple:
            append(row)
            continue
        if len(row) == 3:
            (frame, model, provider, kind, failed, estimated, meta), packed, call_id = row
            if len(packed) == _SHORT_SIZE:
                cost, ts, duration, i, o = _SHORT.unpack(packed)
                cr = cw = r = 0
            else:
                cost, ts, duration, i, o, cr, cw, r = _LONG.unpack(packed)
            attributes = frame.attributes
            append(
                new_record(
                    model, provider, i, o, cr, cw, r, None if cost != cost else cost,
                    frame.module, frame.operation, frame.scope.path, kind, failed, estimated,
                    ts, duration, call_id, frozen_mapping(attributes) if attributes else _EMPTY,
                    MappingProxyType(dict(meta)) if meta else _EMPTY,
                )
            )  # fmt: skip
            continue
        frame = row[0]
        attributes = frame.attributes
        cr, cw, r = row[7:] or (0, 0, 0)
        append(
            new_record(
                row[1], row[2], row[3], row[4], cr, cw, r, row[5], frame.module,
                frame.operation, frame.scope.path, "manual", False, False, row[6], None, None,
                frozen_mapping(attributes) if attributes else _EMPTY, _EMPTY,
            )
        )  # fmt: skip
    return out
