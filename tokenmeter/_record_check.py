"""Checking a call record read from a file: every field, each error naming its place."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ._record import check_flag, check_label, check_timestamp, validate_counts

_T = TypeVar("_T")


def at(where: str, check: Callable[[], _T]) -> _T:
    """Run ``check``; a ValueError it raises is raised again prefixed with ``where.``."""
    try:
        return check()
    except ValueError as e:
        raise ValueError(f"{where}.{e}") from None


def record_kwargs(data: object, where: str) -> dict[str, Any]:
    """The keyword arguments of a `CallRecord` read from ``data``, checked field by field."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be an object, got {type(data).__name__}")
    get = data.get
    model, i, o, cr, cw, r, cost = at(
        where,
        lambda: validate_counts(
            get("model"),
            get("input_tokens", 0),
            get("output_tokens", 0),
            get("cache_read_tokens", 0),
            get("cache_write_tokens", 0),
            get("reasoning_tokens", 0),
            get("cost_usd"),
        ),
    )
    out: dict[str, Any] = {
        "model": model,
        "input_tokens": i,
        "output_tokens": o,
        "cache_read_tokens": cr,
        "cache_write_tokens": cw,
        "reasoning_tokens": r,
        "cost_usd": cost,
    }
    for name in ("provider", "module", "operation", "call_id"):
        try:
            out[name] = check_label(name, get(name))
        except ValueError as e:
            raise ValueError(f"{where}.{e}") from None
    kind = get("kind", "manual")
    if not isinstance(kind, str) or not kind.strip():
        raise ValueError(f"{where}.kind must be a non-empty string, got {kind!r}")
    out["kind"] = kind
    out["path"] = path_of(get("path", []), f"{where}.path")
    out["failed"] = at(where, lambda: check_flag("failed", get("failed", False)))
    out["estimated"] = at(where, lambda: check_flag("estimated", get("estimated", False)))
    ts = get("timestamp", 0.0)
    out["timestamp"] = 0.0 if ts == 0 else at(where, lambda: check_timestamp(ts))
    duration = get("duration_s")
    if duration is not None:
        if (
            isinstance(duration, bool)
            or not isinstance(duration, (int, float))
            or not 0 <= duration < 1e9
        ):
            raise ValueError(
                f"{where}.duration_s must be a non-negative number of seconds or null, "
                f"got {duration!r}"
            )
        duration = float(duration)
    out["duration_s"] = duration
    for name in ("attributes", "metadata"):
        value = get(name, {})
        if value is None:
            value = {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"{where}.{name} must be an object, got {value!r:.80}")
        out[name] = value
    return out


def path_of(value: object, where: str) -> tuple[str, ...]:
    """A scope path read from a file: a list of non-empty strings."""
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list of scope names, got {type(value).__name__}")
    for n, part in enumerate(value):
        if not isinstance(part, str) or not part:
            raise ValueError(f"{where}[{n}] must be a non-empty string, got {part!r:.80}")
    return tuple(value)
