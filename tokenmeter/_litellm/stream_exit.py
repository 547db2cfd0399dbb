"""Streams still open at interpreter exit: recorded then, with what they received.

A stream dropped unfinished is recorded when it is garbage collected. One still alive
when the interpreter exits (kept in a variable, held by LiteLLM: releases before 1.106
keep the last call's stream in ``litellm.error_logs`` until the next call over the wire)
would never be: at exit, every stream still open is recorded as if it had been dropped
then. The stream's one claim token (``StreamCall.open``) keeps that to once whichever of
its end, its collection or the exit comes first.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

from tokenmeter import _errors
from tokenmeter._tree import drain_queued

# The calls of the streams open now (each one's finalizer queues it as dropped). Set and
# removed with single dict operations: atomic, no lock (a stream can end on any thread).
_OPEN: dict[Any, None] = {}


def opened(call: Any) -> None:
    """``call``'s stream is open; it is recorded at exit unless it ends before."""
    _OPEN[call] = None
    # atexit runs the last registered first: moved to the end, the recording runs before
    # the exit functions registered until now (one that saves or prints a report, say).
    with _errors.internal_errors_swallowed("registering the exit recording of streams"):
        atexit.unregister(record_open_streams)
        atexit.register(record_open_streams)


def ended(call: Any) -> None:
    """``call``'s stream was claimed for recording: nothing left to do at exit."""
    _OPEN.pop(call, None)


def record_open_streams() -> None:
    """Record every stream still open, as dropped now; never raises, never waits."""
    with _errors.internal_errors_swallowed("recording the streams open at exit"):
        for call in list(_OPEN):
            finalizer = call.finalizer
            if finalizer is not None:
                finalizer()  # queues it as a dropped stream (once: the finalizer dies)
    drain_queued()


if hasattr(os, "register_at_fork"):
    # A forked child's trees start empty: the parent's open streams are the parent's.
    os.register_at_fork(after_in_child=_OPEN.clear)
