"""Module-level locks that a forked child finds free.

A lock held by another thread when the process forks stays held in the child,
where that thread does not exist: the child's first ``with lock`` would wait
forever. Every lock made here is reinitialised (unlocked) in a forked child, as
the standard library does for its own module locks.
"""

from __future__ import annotations

import os
import threading


def fork_safe_lock() -> threading.RLock:
    """A new lock that is free again in a child forked while another thread held it.

    Re-entrant, like every lock of tokenmeter's: a signal handler or a finalizer that
    calls tokenmeter on a thread already inside such a call proceeds, not waits for
    itself forever.
    """
    lock = threading.RLock()
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=getattr(lock, "_at_fork_reinit"))  # noqa: B009
    return lock
