"""Streams the caller no longer holds: let go by LiteLLM, and recorded at exit if alive.

A stream dropped unfinished is recorded when it is garbage collected. LiteLLM 1.90.7 to
1.105 keep the last call's stream (and its logging object, which refers to it) in
``litellm.error_logs``, a record for debugging that LiteLLM only writes, until the next
call over the wire: tokenmeter holds those two entries weakly there, so the stream lives
as long as its caller keeps it. One still alive when the interpreter exits (kept in a
variable) would never be recorded: at exit, every stream still open is recorded as if
dropped then. The stream's one claim token (``StreamCall.open``) keeps that to once
whichever of its end, its collection or the exit comes first.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Any

import litellm

from tokenmeter import _errors
from tokenmeter._drain import drain_queued

# The calls of the streams open now (each one's finalizer queues it as dropped). Set and
# removed with single dict operations: atomic, no lock (a stream can end on any thread).
_OPEN: dict[Any, None] = {}


def opened(call: Any, stream: Any) -> None:
    """``call``'s stream is open; it is recorded at exit unless it ends before."""
    _OPEN[call] = None
    logs = getattr(litellm, "error_logs", None)
    if isinstance(logs, dict) and logs:
        with _errors.internal_errors_swallowed("letting go of LiteLLM's error_logs stream"):
            _hold_weakly(logs, stream, getattr(stream, "logging_obj", None))
    # atexit runs the last registered first: moved to the end, the recording runs before
    # the exit functions registered until now (one that saves or prints a report, say).
    with _errors.internal_errors_swallowed("registering the exit recording of streams"):
        atexit.unregister(record_open_streams)
        atexit.register(record_open_streams)


def _hold_weakly(logs: dict[Any, Any], *held: Any) -> None:
    """Put a weak proxy in place of each of ``held`` in ``logs``' entries (dicts of locals)."""
    for entry in list(logs.values()):
        if not isinstance(entry, dict):
            continue
        for key, value in list(entry.items()):
            if value is not None and any(value is h for h in held):
                try:
                    entry[key] = weakref.proxy(value)
                except TypeError:  # not weakly referable: left as it is
                    continue


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
