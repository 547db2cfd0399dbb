"""Work queued where no lock may be taken, recorded later at a safe point."""

from __future__ import annotations

from collections.abc import Callable

from ._errors import internal_errors_swallowed

#: Records what GC finalizers queued; see `drain_queued_with`.
_drain: Callable[[], None] | None = None


def drain_queued_with(drain: Callable[[], None]) -> None:
    """Register what records work queued where no lock may be taken (abandoned LiteLLM streams).

    A GC finalizer can run on a thread that already holds a tree's lock, so it only
    appends to a lock-free queue; ``drain()`` records what is queued. It is called with
    no tree lock held, by `drain_queued`: before every reading of a tree, before a
    budget check, and by the adapter at its own safe points.
    """
    global _drain
    _drain = drain


def drain_queued() -> None:
    """Record what GC finalizers queued; the calling thread must hold no tree's lock."""
    drain = _drain
    if drain is not None:
        with internal_errors_swallowed("recording abandoned streams"):
            drain()
