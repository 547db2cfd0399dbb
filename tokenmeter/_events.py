"""Observers: the seam through which exporters see calls and scope entries.

An observer (the OpenTelemetry exporter, the ``tokenmeter.calls`` logger, ...) is
registered with `add_observer`. While none is registered, every hook below is a
single truthiness test of `OBSERVERS` on the hot path. While one is:

- every call is counted at once (never queued) and a `CallRecord` is built for it,
  then passed to ``on_call(record, frame)`` after the meter's lock is released;
- entering a scope makes a fresh frame (never a cached one), passed to
  ``on_enter(frame)``; leaving it passes the same frame to ``on_exit(frame)``.

Observers run in the thread and context of the call or scope. An observer that
raises is logged on the ``tokenmeter`` logger and never reaches the host program.
This module imports nothing from tokenmeter: every layer may notify through it.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Protocol

logger = logging.getLogger("tokenmeter")


class Observer(Protocol):
    """What an observer implements; each method is optional in practice (see `add_observer`)."""

    def on_call(self, record: Any, frame: Any) -> None:
        """A call was counted on ``frame``'s scope; ``record`` is its `CallRecord`."""

    def on_enter(self, frame: Any) -> None:
        """``frame`` was made current by entering its scope."""

    def on_exit(self, frame: Any) -> None:
        """``frame`` (the one passed to ``on_enter``) is being left."""


#: The registered observers, as an immutable tuple replaced on change (readers need no lock).
OBSERVERS: tuple[Observer, ...] = ()
_lock = threading.RLock()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()  # it may have been held by a thread the child does not have


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def add_observer(observer: Observer) -> None:
    """Register ``observer`` (idempotent)."""
    global OBSERVERS
    with _lock:
        if observer not in OBSERVERS:
            OBSERVERS = (*OBSERVERS, observer)


def remove_observer(observer: Observer) -> None:
    """Unregister ``observer`` (no error if it was not registered)."""
    global OBSERVERS
    with _lock:
        OBSERVERS = tuple(o for o in OBSERVERS if o is not observer)


def _notify(method: str, *args: Any) -> None:
    for observer in OBSERVERS:
        fn = getattr(observer, method, None)
        if fn is None:
            continue
        try:
            fn(*args)
        except Exception:
            logger.exception("tokenmeter observer %r failed in %s; ignored", observer, method)


def emit_call(record: Any, frame: Any) -> None:
    """Tell every observer that ``record`` was counted on ``frame``'s scope."""
    _notify("on_call", record, frame)


def emit_enter(frame: Any) -> None:
    """Tell every observer that ``frame`` was entered."""
    _notify("on_enter", frame)


def emit_exit(frame: Any) -> None:
    """Tell every observer that ``frame`` is being left."""
    _notify("on_exit", frame)
