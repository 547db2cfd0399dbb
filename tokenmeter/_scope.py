"""The scope stack: one ContextVar holding an immutable frame, entered and left.

``CURRENT`` holds the current `Frame` (None outside any scope). Entering a scope
(in ``_track``: a cached frame, else `enter_frame`) finds or makes its
node in the tree, counts the entry, sets the node's budget if one is given, and sets
a new frame; leaving sets the ContextVar back to the frame before (`leave`, `release`).
Observers (``_events``) see each entry and exit.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from . import _errors, _events
from ._budgets import set_limits_locked
from ._frame import NO_KIDS, Frame
from ._tree import enter_child, frame_under, root_frame, tree_lock

if TYPE_CHECKING:
    from ._limits import Limits
    from ._tree import Node, Tree

logger = logging.getLogger("tokenmeter")

#: The one ContextVar: the current frame, or None outside any scope.
CURRENT: ContextVar[Frame | None] = ContextVar("tokenmeter_frame", default=None)

#: Set while an instrumented asynchronous LLM call is in progress: that call's
#: state (see ``_litellm.record.CallState``). LiteLLM's own retries, fallbacks and Router
#: attempts inside the call see it and are not recorded again. It travels with
#: the frame into tasks and, through ``_threads``, into threads started meanwhile.
IN_CALL: ContextVar[Any] = ContextVar("tokenmeter_call", default=None)


class _ThreadCall(threading.local):
    call: Any = None


#: The same for a synchronous call, which holds its thread until it returns: a
#: thread-local is set and cleared at a third of a ContextVar's cost. Threads the
#: call starts get it as ``IN_CALL`` (see `call_in_progress`).
THREAD_CALL = _ThreadCall()


def call_in_progress() -> Any:
    """The state of the instrumented call in progress here, or None."""
    return IN_CALL.get() or THREAD_CALL.call


#: Cached frames of top-level entries into the default tree (no frame current), by name.
TOP: dict[str, Frame] = {}


#: The tree a scope entered outside any scope belongs to (the default meter), and its root frame.
_default_tree: Tree | None = None
_default_root: Frame | None = None


def use_default_tree(tree: Tree) -> None:
    """Register the tree that scopes entered outside any scope, with no meter named, go to."""
    global _default_tree, _default_root
    _default_tree = tree
    _default_root = root_frame(tree)
    TOP.clear()  # frames cached for the tree before


def current_frame() -> Frame:
    """The current frame, or the default tree's root frame outside any scope."""
    cur = CURRENT.get()
    if cur is None:
        assert _default_root is not None, "the default meter is registered at import"
        return _default_root
    return cur


#: Whether ``node.entries += 1`` may count an entry without the tree's lock. With the
#: GIL it is atomic: CPython switches threads only at a call or a backward jump, never
#: between the load and the store of one ``+=`` on an int attribute (no Python code
#: runs in between). A free-threaded build counts under the lock.
GIL_COUNT: bool = getattr(sys, "_is_gil_enabled", lambda: True)()


def count_entry(node: Any) -> None:
    """Count one entry of ``node`` under its tree's lock (free-threaded builds)."""
    with tree_lock(node.meter):
        node.entries += 1


def enter_frame(
    meter: Tree | None,
    name: str,
    module: str | None,
    operation: str | None,
    attributes: Mapping[str, Any] | None,
    limits: Limits | None,
    cur: Frame | None,
    claim: bool = False,
) -> Frame:
    """Count an entry of ``name`` under ``cur`` (the current frame); the frame to make current.

    ``meter`` None means the meter of the current scope (the default one outside
    scopes). The frame is cached for the next plain entry (see `Frame`) when it can be;
    with ``claim``, a top-level frame is cached only when it is left (`release`).
    """
    old = prev = cur
    plain = module is None and operation is None and not attributes and not _events.OBSERVERS
    cache: dict[str, Frame] | None
    home = None
    if cur is None:
        if meter is None:
            meter = _default_tree
            assert meter is not None, "the default meter is registered at import"
            assert _default_root is not None
            home = TOP if plain else None
            cache = None if claim else home
            prev = cur = _default_root
        else:
            cache = None
            prev = cur = root_frame(meter)
    elif meter is not None and cur.scope.meter is not meter:
        # Nest under this meter's nearest open scope, but keep the whole chain in
        # ``prev`` so other meters still find theirs (``_tree.frame_under``).
        cur = frame_under(meter, cur)
        cache = None  # the frame's prev is not its parent frame
    elif plain:
        cache = cur.kids
        if cache is NO_KIDS:
            cache = cur.kids = {}
    else:
        cache = None
    scope, tables = enter_child(cur.scope, name, limits, set_limits_locked)
    # Built with plain slot stores: calling the class costs twice as much (see `Frame`).
    frame = _new_frame(Frame)
    frame.scope = scope
    frame.name = name
    frame.module = module if module is not None else cur.module
    frame.operation = operation if operation is not None else cur.operation
    frame.attributes = {**cur.attributes, **attributes} if attributes else cur.attributes
    frame.budgets = scope.budgets
    frame.prev = prev
    frame.old = old
    frame.kids = NO_KIDS
    frame.home = home
    frame.tok = None
    frame.fast, frame.pending = tables
    if cache is not None:
        cache[name] = frame
    return frame


_new_frame = object.__new__


def exit_(token: Token[Frame | None]) -> None:
    """Set back the frame current before ``token``'s ``CURRENT.set`` (observers see an exit)."""
    if _events.OBSERVERS:
        _events.emit_exit(CURRENT.get())
    try:
        CURRENT.reset(token)
    except (ValueError, RuntimeError):
        restore(token)


def back_to(cur: Frame | None) -> None:
    """Make ``cur`` current again after an entry from it that an exception interrupted.

    Whatever the entry set current (nothing yet, or its frame) is left, as if the
    interrupt had landed at the first line of its body: observers see an exit, and an
    entry already counted stays counted (see docs/threads.md).
    """
    f = CURRENT.get()
    if f is cur or f is None:
        return
    if _events.OBSERVERS:
        _events.emit_exit(f)
    if cur is not None:
        CURRENT.set(cur)
    else:
        release(f)


def leave(name: str) -> None:
    """Leave the most recent entry of scope ``name`` in this context (no token needed).

    The current frame normally is that entry's; if the block left another frame
    current (unbalanced code inside), the most recent entry of ``name`` on the
    chain is undone, as a plain stack would.
    """
    f = CURRENT.get()
    while f is not None and f.name != name:
        f = f.old
    if f is None:
        logger.debug("leaving scope %r, which is not open in this context", name)
        return
    if _events.OBSERVERS:
        _events.emit_exit(f)
    if f.old is not None:
        CURRENT.set(f.old)
    else:
        release(f)


def release(f: Frame) -> None:
    """Leave top-level frame ``f``: reset its token (the variable unset again if it was).

    Then ``f`` goes back to its cache for the next entry. Without a usable token (left in
    another Context, or not entered by `Track`) the variable is set to None instead.
    """
    try:
        CURRENT.reset(f.tok)
        f.tok = None
    except (TypeError, ValueError, RuntimeError):
        CURRENT.set(None)
    h = f.home
    if h is not None:
        h[f.name] = f


def restore(token: Token[Frame | None]) -> None:
    """Restore the frame that was current before ``token``'s ``CURRENT.set``."""
    try:
        CURRENT.reset(token)
    except (ValueError, RuntimeError):
        # The token was made in another Context (a generator resumed elsewhere) or
        # was already used: fall back to setting the previous value directly.
        old = token.old_value
        CURRENT.set(None if old is Token.MISSING else old)
        logger.debug("scope token reset across contexts", exc_info=_errors.RAISE_INTERNAL_ERRORS)


def detach_child_locked(parent: Node, name: str) -> None:
    """Remove ``parent``'s child ``name`` (lock held): its cached frames go unused."""
    node = parent.children.pop(name, None)
    if node is not None:
        for n in node.walk():
            n.attached = False
