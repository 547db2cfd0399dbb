"""Installing and removing the wrappers on litellm, its Router and its stream class."""

from __future__ import annotations

import threading
from typing import Any

import litellm

from . import responses_streams, streams, wrappers
from .settings import FUNCTIONS
from .wrappers import _wrap

_originals: dict[tuple[object, str], Any] = {}
_router_patched: list[str] = []
_lock = threading.Lock()


def instrument() -> None:
    """Wrap litellm's entry points, Router methods and stream class (idempotent)."""
    with _lock:
        if wrappers._installed:
            return
        for name, kind in FUNCTIONS.items():
            fn = getattr(litellm, name, None)
            if fn is None or hasattr(fn, "__tokenmeter_original__"):
                continue
            _originals[(litellm, name)] = fn
            setattr(litellm, name, _wrap(fn, kind))
        from litellm.router import Router

        # Router serves its endpoints from a core class through a metaclass: a
        # class-level setattr replaces the core's method and delattr restores it.
        for name, kind in FUNCTIONS.items():
            try:
                meth = getattr(Router, name)
            except AttributeError:
                continue
            if not callable(meth) or hasattr(meth, "__tokenmeter_original__"):
                continue
            setattr(Router, name, _wrap(meth, kind))
            _router_patched.append(name)
        from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

        streams._patch_stream_class(CustomStreamWrapper, _originals)
        responses_streams.patch_responses_streams(_originals)
        wrappers._set_installed(True)


def uninstrument() -> None:
    """Put litellm back as it was: calls are no longer attributed."""
    with _lock:
        for (owner, name), original in list(_originals.items()):
            setattr(owner, name, original)
        _originals.clear()
        if _router_patched:
            from litellm.router import Router

            for name in reversed(_router_patched):
                delattr(Router, name)
            _router_patched.clear()
        wrappers._set_installed(False)


def instrumented() -> bool:
    """Whether litellm calls are being attributed."""
    return wrappers._installed
