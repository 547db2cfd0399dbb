"""The ``tokenmeter.calls`` logger: one log record per counted call, for those who want each.

Turned on by configuring logging so that ``tokenmeter.calls`` emits INFO, e.g.
``logging.basicConfig(level=logging.INFO)`` or
``logging.getLogger("tokenmeter.calls").setLevel(logging.INFO)`` with a handler.
While it would emit, an observer (`tokenmeter._events`) logs every call with the
call's fields in ``extra``; while it would not, nothing is registered and calls
pay nothing. Whether it would emit is checked again whenever any logger's level
changes (``setLevel``, ``basicConfig``, ``dictConfig``, ``logging.disable``): all
of them empty every logger's level cache, and this logger's cache re-checks when
emptied (`_SyncingCache`). Nothing in the logging module is replaced.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from . import _events
from ._forksafe import fork_safe_lock

LOGGER_NAME = "tokenmeter.calls"
logger = logging.getLogger(LOGGER_NAME)

#: The ``extra`` keys of each record (none collides with a `logging.LogRecord` attribute).
EXTRA_KEYS = (
    "scope",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
    "cost_usd",
    "duration_s",
    "call_kind",
    "call_failed",
    "call_module",
    "call_operation",
    "call_id",
)


class CallsLog:
    """The observer that logs each counted call on ``tokenmeter.calls``."""

    def on_call(self, record: Any, frame: Any) -> None:
        """Log ``record`` (a `CallRecord`) at INFO, its fields in ``extra``."""
        if not logger.isEnabledFor(logging.INFO):
            return
        scope = "/".join(record.path)
        cost = record.cost_usd
        dur = record.duration_s
        logger.info(
            "%s %s: %d tokens (%d in, %d out), %s%s",
            scope or "(no scope)",
            record.model,
            record.total_tokens,
            record.input_tokens,
            record.output_tokens,
            "unpriced" if cost is None else f"${cost:.6f}",
            "" if dur is None else f", {dur:.3f}s",
            extra={
                "scope": scope,
                "model": record.model,
                "provider": record.provider,
                "input_tokens": record.input_tokens,
                "output_tokens": record.output_tokens,
                "total_tokens": record.total_tokens,
                "cache_read_tokens": record.cache_read_tokens,
                "reasoning_tokens": record.reasoning_tokens,
                "cost_usd": cost,
                "duration_s": dur,
                "call_kind": record.kind,
                "call_failed": record.failed,
                "call_module": record.module,
                "call_operation": record.operation,
                "call_id": record.call_id,
            },
        )


# Only ``on_call``: ``_events`` skips the hooks an observer does not have.
OBSERVER = cast(_events.Observer, CallsLog())
_install_lock = fork_safe_lock()


def sync() -> None:
    """Register the observer while ``tokenmeter.calls`` would emit INFO; unregister otherwise."""
    try:
        if logger.isEnabledFor(logging.INFO):
            _events.add_observer(OBSERVER)
        else:
            _events.remove_observer(OBSERVER)
    except Exception:  # never into the host's logging configuration
        _events.logger.exception("tokenmeter.calls: could not update the call log; ignored")


class _SyncingCache(dict[int, bool]):
    """The logger's level cache: logging empties it whenever any level changes; we then re-check.

    ``Logger.setLevel``, ``basicConfig``, ``dictConfig`` and ``logging.disable`` all
    end by emptying every logger's level cache (``Manager._clear_cache``). Giving
    this one logger a cache that re-checks when emptied follows every such change
    without replacing anything in the logging module and costs calls nothing.
    """

    __slots__ = ()

    def clear(self) -> None:
        super().clear()
        sync()


def install() -> None:
    """Check now, and again whenever logging levels change (idempotent)."""
    with _install_lock:
        cache = getattr(logger, "_cache", None)
        if isinstance(cache, dict) and not isinstance(cache, _SyncingCache):
            logger._cache = _SyncingCache(cache)  # type: ignore[attr-defined]
    sync()
