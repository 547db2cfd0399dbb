"""The scope stack: one ContextVar holding an immutable frame, entered and left.

``CURRENT`` holds the current `Frame` (None outside any scope). Entering a scope
finds or makes its node in the tree, counts the entry, sets the node's budget if
one is given, and sets a new frame; leaving resets the ContextVar to the frame
before. Observers (``_events``) see each entry and exit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from . import _errors, _events
from ._budgets import set_limits_locked
from ._tree import Frame

if TYPE_CHECKING:
    from ._limits import Limits
    from ._tree import Tree

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


#: The tree a scope entered outside any scope belongs to (the default meter).
_default_tree: Tree | None = None


def use_default_tree(tree: Tree) -> None:
    """Register the tree that scopes entered outside any scope, with no meter named, go to."""
    global _default_tree
    _default_tree = tree


def current_frame() -> Frame:
    """The current frame, or the default tree's root frame outside any scope."""
    cur = CURRENT.get()
    if cur is None:
        assert _default_tree is not None, "the default meter is registered at import"
        return _default_tree._root_frame
    return cur


def enter(
    meter: Tree | None,
    name: str,
    module: str | None,
    operation: str | None,
    attributes: Mapping[str, Any] | None,
    limits: Limits | None,
) -> tuple[Token[Frame | None], Any]:
    """Enter scope ``name`` under the current one; returns the reset token and the scope.

    ``meter`` None means the meter of the current scope (the default one outside scopes).
    """
    prev = cur = CURRENT.get()
    if cur is None:
        if meter is None:
            meter = _default_tree
            assert meter is not None, "the default meter is registered at import"
        prev = cur = meter._root_frame
    elif meter is not None and cur.scope.meter is not meter:
        # Nest under this meter's nearest open scope, but keep the whole chain in
        # ``prev`` so other meters still find theirs (``Meter._frame_under``).
        cur = meter._frame_under(cur)
    parent = cur.scope
    lock = parent.meter._lock
    with lock:
        scope = parent.children.get(name)
        if scope is None:
            scope = parent._child_locked(name)
        scope.entries += 1
        if limits is not None:
            set_limits_locked(scope, limits)
    frame = Frame(
        scope,
        module if module is not None else cur.module,
        operation if operation is not None else cur.operation,
        {**cur.attributes, **attributes} if attributes else cur.attributes,
        scope.budgets,
        prev,
    )
    token = CURRENT.set(frame)
    if _events.OBSERVERS:
        _events.emit_enter(frame)
    return token, scope


def exit_(token: Token[Frame | None]) -> None:
    """Leave the scope entered by ``enter``: restore the frame current before it."""
    if _events.OBSERVERS:
        _events.emit_exit(CURRENT.get())
    restore(token)


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
