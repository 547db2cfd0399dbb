"""Carry the current scope into threads and executor jobs started inside it.

``threading.Thread.start`` and ``concurrent.futures.ThreadPoolExecutor.submit``
(which ``loop.run_in_executor`` uses) are wrapped so work started inside a scope
runs in that scope, with no code from the user. ``asyncio.to_thread`` copies the
context by itself. Only tokenmeter's own ContextVars are carried (the frame, and
the marker of an LLM call in progress); nothing else of the caller's context is
touched. Turn it off with ``propagate_to_threads(False)``
or ``TOKENMETER_PROPAGATE_THREADS=0`` in the environment.

Other libraries patch the same methods (logfire, tracing SDKs). Turning propagation
on wraps whatever is in place then; turning it off puts that back only while
tokenmeter's wrapper is still the one in place. When another library has wrapped it
since, its patch stays, and tokenmeter's wrapper, still in its chain, passes
calls straight through until propagation is turned on again.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from . import _scope
from ._frame import Frame
from ._handle import Scope
from ._scope import call_in_progress, restore
from ._tree import frame_tables

# Bound by assignment, not by ``from ... import``: CPython 3.11 compiles ``NAME.get()``
# on an imported name as an attribute load that builds a bound method on every call
# (about 40 ns each, three times per scope); on an assigned name it is a method call.
CURRENT = _scope.CURRENT
IN_CALL = _scope.IN_CALL

R = TypeVar("R")

#: What tokenmeter's wrappers call: the methods in place when they were installed.
_orig_thread_start = threading.Thread.start
_orig_submit = concurrent.futures.ThreadPoolExecutor.submit
_enabled = False
#: Whether each wrapper is in the method's chain (in place, or under a later patch).
_start_installed = False
_submit_installed = False


def _run_in(
    frame: Frame | None, call: object, fn: Callable[..., R], /, *args: Any, **kwargs: Any
) -> R:
    token = CURRENT.set(frame)
    call_token = IN_CALL.set(call)
    try:
        return fn(*args, **kwargs)
    finally:
        IN_CALL.reset(call_token)
        restore(token)


def _thread_start(self: threading.Thread) -> None:
    frame = CURRENT.get()
    if frame is not None and _enabled:
        # An instance attribute wins over the class's run(), subclasses included.
        self.run = functools.partial(_run_in, frame, call_in_progress(), self.run)  # type: ignore[method-assign]
    _orig_thread_start(self)


def _submit(
    self: concurrent.futures.ThreadPoolExecutor,
    fn: Callable[..., R],
    /,
    *args: Any,
    **kwargs: Any,
) -> concurrent.futures.Future[R]:
    if not _enabled:
        return _orig_submit(self, fn, *args, **kwargs)
    # Always bind, even to "no scope": a pooled worker thread must not keep the
    # scope of whoever happened to start it.
    return _orig_submit(self, _run_in, CURRENT.get(), call_in_progress(), fn, *args, **kwargs)


def propagate_to_threads(enabled: bool = True) -> None:
    """Turn automatic propagation of the scope into threads and executors on or off."""
    global _enabled, _orig_thread_start, _orig_submit, _start_installed, _submit_installed
    enabled = bool(enabled)
    pool = concurrent.futures.ThreadPoolExecutor
    if enabled:
        # Wrap what is in place now (a patch made while off keeps running under ours),
        # unless our wrapper is still in the chain under another library's patch.
        if not _start_installed:
            _orig_thread_start = threading.Thread.start
            threading.Thread.start = _thread_start  # type: ignore[method-assign]
            _start_installed = True
        if not _submit_installed:
            _orig_submit = pool.submit
            pool.submit = _submit  # type: ignore[method-assign, assignment]
            _submit_installed = True
    else:
        # Unwrap only where ours is still the method in place: a library that wrapped
        # it since keeps its patch, and ours (called by it) passes through.
        if _start_installed and threading.Thread.__dict__.get("start") is _thread_start:
            threading.Thread.start = _orig_thread_start  # type: ignore[method-assign]
            _start_installed = False
        if _submit_installed and pool.__dict__.get("submit") is _submit:
            pool.submit = _orig_submit  # type: ignore[method-assign]
            _submit_installed = False
    _enabled = enabled


def propagating_to_threads() -> bool:
    """Whether the scope is carried into threads and executor jobs automatically."""
    return _enabled


def bind(fn: Callable[..., R], /) -> Callable[..., R]:
    """Return ``fn`` bound to the current scope: wherever it runs, its calls land here.

    For threads and pools the automatic propagation does not cover (your own
    thread pools, callbacks run by other libraries).
    """
    return functools.partial(_run_in, CURRENT.get(), call_in_progress(), fn)


def bind_snapshot(fn: Callable[..., R], /) -> Callable[..., R]:
    """Return ``fn`` bound to a snapshot of the whole current context (every ContextVar).

    Uses ``contextvars_extras.context_management.bind_to_snapshot_context``.
    """
    from contextvars_extras.context_management import bind_to_snapshot_context

    return bind_to_snapshot_context(fn)  # type: ignore[no-any-return]


class use_scope:
    """Make an existing scope current (without counting an entry), e.g. in a worker thread.

    ``with tm.use_scope(scope): ...`` where ``scope`` came from ``track()`` or
    ``tm.current()`` in the thread that started the work.
    """

    __slots__ = ("_scope", "_token")

    def __init__(self, scope: Scope) -> None:
        if not isinstance(scope, Scope):
            raise TypeError(f"use_scope() takes a tokenmeter Scope, got {scope!r}")
        self._scope = scope

    def __enter__(self) -> Scope:
        s = self._scope
        cur = CURRENT.get()
        # The node's budgets (its budgeted ancestors) hold here as in any of its frames.
        module = operation = None
        attributes: dict[str, Any] = {}
        if cur is not None and cur.scope is s:
            module, operation, attributes = cur.module, cur.operation, dict(cur.attributes)
        frame = Frame(s, module, operation, attributes, s.budgets, cur, cur, frame_tables(s))
        self._token = CURRENT.set(frame)
        return s

    def __exit__(self, *exc: object) -> None:
        restore(self._token)


if os.environ.get("TOKENMETER_PROPAGATE_THREADS", "1").lower() not in ("0", "false", "no", "off"):
    propagate_to_threads(True)
