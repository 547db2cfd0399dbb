"""A stream's call: recorded once, on the scope where it was made, however the stream ends.

Every stream class (LiteLLM's chat stream in ``streams``, its Responses API streams in
``responses_streams``) ends through `finish` (exhausted, closed, broken) or through its
finalizer and `abandoned` (dropped), and is recorded by `add_stream`: what differs by
class is only how the usage is found.
"""

from __future__ import annotations

import atexit
import contextvars
import os
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from tokenmeter import _errors, _events
from tokenmeter._drain import drain_queued, drain_queued_with
from tokenmeter._frame import Frame

from .record import add_call
from .stream_exit import ended


class StreamCall:
    """What a stream needs to be recorded on the caller's scope when it ends."""

    __slots__ = (
        "ahead",
        "args",
        "context",
        "finalizer",
        "frame",
        "in_next",
        "kind",
        "kwargs",
        "open",
        "started",
        "text",
        "want_usage",
    )

    def __init__(
        self,
        frame: Frame,
        kind: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        started: float,
    ) -> None:
        self.frame = frame
        self.kind = kind
        self.args = args
        self.kwargs = kwargs
        self.started = started
        # One token: whoever pops it records the stream (list.pop is atomic, takes no lock).
        self.open = [True]
        self.in_next = False
        # Chunks read ahead after the finish chunk, handed out before anything else.
        self.ahead: deque[Any] | None = None
        # Responses API streams: the text deltas read so far (for an estimate).
        self.text: list[str] = []
        # A usage chunk was asked for (by the caller, or by `_prepare`), for one choice.
        options = kwargs.get("stream_options")
        self.want_usage = (
            isinstance(options, Mapping)
            and bool(options.get("include_usage"))
            and kwargs.get("n") in (None, 1)
        )
        self.finalizer: weakref.finalize[Any, Any] | None = None
        # Observers see a stream in (a copy of) the context its call was made in.
        self.context = contextvars.copy_context() if _events.OBSERVERS else None


def claim(call: StreamCall) -> bool:
    """Take the right to record ``call``: True once, for one caller; never waits."""
    try:
        call.open.pop()
    except IndexError:
        return False
    ended(call)
    finalizer = call.finalizer
    if finalizer is not None:
        finalizer.detach()
    return True


def in_call_context(call: StreamCall, fn: Callable[..., None], *args: Any) -> None:
    """Run ``fn`` in the context captured when ``call`` was made, if one was."""
    if call.context is None:
        fn(*args)
    else:
        call.context.run(fn, *args)


def finish(call: StreamCall, record: Callable[..., None], *args: Any) -> None:
    """A stream ended while read (exhausted, broken) or closed: ``record(*args)``, once,
    in the call's context, its errors logged and swallowed."""
    if ABANDONED:
        drain_queued()
    if not claim(call):
        return
    with _errors.internal_errors_swallowed("stream recording"):
        in_call_context(call, record, *args)


def add_stream(
    call: StreamCall,
    model: str,
    provider: str | None,
    toks: tuple[int, int, int, int, int],
    cost: int | None,
    failed: bool,
    estimated: bool,
    complete: bool,
    error: BaseException | None,
    hp: Mapping[str, Any],
    meta: dict[str, Any],
) -> None:
    """Add a stream's call to the scope it was made in; ``meta`` gets how the stream ended."""
    if not complete:
        meta["abandoned"] = True
    if error is not None:
        meta["error"] = type(error).__name__
    add_call(
        call.frame,
        call.kind,
        model,
        provider,
        toks,
        cost,
        failed,
        estimated,
        call.started,
        hp,
        meta,
    )


# Streams dropped before they ended. A finalizer may run (cyclic GC) on a thread holding a
# tree's lock, so it only appends here (atomic); `_drain_abandoned` records them with no lock
# held: before a tree is read or a budget checked, when a stream starts or ends, at exit
# (where the streams still open are recorded too, see ``stream_exit``).
ABANDONED: deque[tuple[Any, ...]] = deque()


def abandoned(record: Callable[..., None], *args: Any) -> None:
    """weakref.finalize callback: a stream dropped before it ended. Queues it, nothing more."""
    ABANDONED.append((record, args))


def _drain_abandoned() -> None:
    """Record the queued abandoned streams; the calling thread holds no tree's lock."""
    queue = ABANDONED
    while queue:
        try:
            record, args = queue.popleft()
        except IndexError:  # another thread took the last one
            return
        with _errors.internal_errors_swallowed("abandoned stream recording"):
            record(*args)


drain_queued_with(_drain_abandoned)
atexit.register(drain_queued)
if hasattr(os, "register_at_fork"):
    # A forked child's trees start empty: the parent's dropped streams are the parent's.
    os.register_at_fork(after_in_child=ABANDONED.clear)
