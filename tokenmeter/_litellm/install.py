"""Installing and removing the wrappers on litellm, its Router and its stream class.

Every replaced attribute is remembered as it was: the value in the owner's own
``__dict__`` (put back as it was) or, for a member the owner only served (a
Router endpoint LiteLLM serves from its core class, a lazily loaded function),
the absence of one (the patch is deleted, and the owner serves its own again).
What was wrapped, what LiteLLM lacks and what failed are kept for
``tm.instrumented()``.
"""

from __future__ import annotations

import sys
from typing import Any

import litellm

from tokenmeter._forksafe import fork_safe_lock

from . import responses_streams, streams, text_streams, wrappers
from .settings import FUNCTIONS
from .wrappers import wrap

_MISSING: Any = object()

#: (owner, name) -> (the owner's own __dict__ entry or _MISSING, the value read before patching)
_patched: dict[tuple[object, str], tuple[Any, Any]] = {}
#: (module dict, name) -> (original, wrapper): names bound with ``from litellm import f`` early
_rebound: dict[tuple[int, str], tuple[dict[str, Any], Any, Any]] = {}
_lock = fork_safe_lock()

_status: dict[str, Any] = {"wrapped": (), "absent": (), "failed": {}, "rebound": ()}


def _own(owner: object, name: str) -> Any:
    try:
        return vars(owner).get(name, _MISSING)
    except TypeError:
        return _MISSING


def _patch(owner: object, label: str, name: str, kind: str, wrapped: list[str]) -> None:
    before = getattr(owner, name)
    own = _own(owner, name)
    setattr(owner, name, wrap(before, kind))
    _patched[(owner, name)] = (own, before)
    wrapped.append(f"{label}.{name}")


def instrument() -> None:
    """Wrap litellm's entry points, Router methods and stream class (idempotent).

    Each entry point is wrapped on its own: one that LiteLLM lacks (an older
    release) is skipped, one that cannot be wrapped is noted as failed, and the
    others are wrapped all the same.
    """
    with _lock:
        if wrappers.installed:
            return
        wrapped: list[str] = []
        absent: list[str] = []
        failed: dict[str, str] = {}
        for name, kind in FUNCTIONS.items():
            try:
                fn = getattr(litellm, name, None)
                if fn is None:
                    absent.append(f"litellm.{name}")
                elif not hasattr(fn, "__tokenmeter_original__"):
                    _patch(litellm, "litellm", name, kind, wrapped)
            except Exception as e:
                failed[f"litellm.{name}"] = f"{type(e).__name__}: {e}"
        try:
            from litellm.router import Router
        except Exception as e:
            failed["litellm.Router"] = f"{type(e).__name__}: {e}"
        else:
            # On LiteLLM 1.110 the Router serves its endpoints from a core class through a
            # metaclass: a class-level setattr replaces the core's method, delattr restores it.
            for name, kind in FUNCTIONS.items():
                try:
                    meth = getattr(Router, name, None)
                    if meth is None or not callable(meth):
                        absent.append(f"Router.{name}")
                    elif not hasattr(meth, "__tokenmeter_original__"):
                        _patch(Router, "Router", name, kind, wrapped)
                except Exception as e:
                    failed[f"Router.{name}"] = f"{type(e).__name__}: {e}"
        try:
            from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

            stream_originals: dict[tuple[object, str], Any] = {}
            streams.patch_stream_class(CustomStreamWrapper, stream_originals)
            for (owner, name), own in stream_originals.items():
                _patched[(owner, name)] = (own, own)
                wrapped.append(f"CustomStreamWrapper.{name}")
            for name in ("close", "aclose"):
                if (CustomStreamWrapper, name) not in stream_originals:
                    absent.append(f"CustomStreamWrapper.{name}")
        except Exception as e:
            failed["CustomStreamWrapper"] = f"{type(e).__name__}: {e}"
        try:
            responses_originals: dict[tuple[object, str], Any] = {}
            responses_streams.patch_responses_streams(responses_originals)
        except Exception as e:
            failed["litellm.responses streams"] = f"{type(e).__name__}: {e}"
        try:
            text_originals: dict[tuple[object, str], Any] = {}
            text_streams.patch_text_stream(text_originals)
        except Exception as e:
            failed["litellm.text_completion streams"] = f"{type(e).__name__}: {e}"
        responses_originals.update(text_originals)
        for (owner, name), own in responses_originals.items():
            _patched[(owner, name)] = (own, own)
            wrapped.append(f"{getattr(owner, '__name__', owner)}.{name}")
        try:
            failed.update(_rebind_early_imports())
        except Exception as e:  # the scan is a courtesy: never let it undo the wrapping
            failed["early 'from litellm import' bindings"] = f"{type(e).__name__}: {e}"
        wrappers.set_installed(bool(wrapped))
        _status.update(
            wrapped=tuple(wrapped),
            absent=tuple(absent),
            failed=failed,
            rebound=tuple(sorted({f"{m}.{n}" for m, n in _rebound_names()})),
        )


def _rebound_names() -> list[tuple[str, str]]:
    return [(str(d.get("__name__", "?")), key) for (_, key), (d, _, _) in _rebound.items()]


def _rebind_early_imports() -> dict[str, str]:
    """Wrap the names other modules bound with ``from litellm import completion`` earlier.

    Returns the bindings that could not be rewritten (name -> reason).
    """
    wanted: dict[int, tuple[Any, Any]] = {}
    for (owner, name), (_own_value, before) in _patched.items():
        if owner is litellm:
            wanted[id(before)] = (before, getattr(litellm, name))
    failed: dict[str, str] = {}
    if not wanted:
        return failed
    for modname, module in list(sys.modules.items()):
        if modname.startswith(("litellm.", "tokenmeter.")) or modname in ("litellm", "tokenmeter"):
            continue
        try:
            d = getattr(module, "__dict__", None)
            if type(d) is not dict:
                continue
            hits = [(k, v) for k, v in list(d.items()) if id(v) in wanted]
        except Exception:
            continue
        for key, value in hits:
            original, wrapper = wanted[id(value)]
            if value is not original:
                continue
            try:
                d[key] = wrapper
                _rebound[(id(d), key)] = (d, original, wrapper)
            except Exception as e:
                failed[f"{modname}.{key}"] = (
                    f"{type(e).__name__}: {e}; import tokenmeter before litellm, or call "
                    f"litellm.{getattr(original, '__name__', key)}(...) through the module"
                )
    return failed


def uninstrument() -> None:
    """Put litellm back as it was: calls are no longer attributed.

    Every patched attribute is afterwards the very object it was before.
    """
    with _lock:
        for (_, key), (d, original, wrapper) in list(_rebound.items()):
            if d.get(key) is wrapper:
                d[key] = original
        _rebound.clear()
        for (owner, name), (own, before) in reversed(list(_patched.items())):
            if own is _MISSING:
                try:
                    delattr(owner, name)
                except AttributeError:
                    pass
                if getattr(owner, name, _MISSING) is not before:
                    setattr(owner, name, before)
            else:
                setattr(owner, name, own)
        _patched.clear()
        _status.update(wrapped=(), absent=(), failed={}, rebound=())
        wrappers.set_installed(False)


def instrumented() -> bool:
    """Whether litellm calls are being attributed."""
    return wrappers.installed


def status() -> dict[str, Any]:
    """What the last ``instrument()`` did: wrapped, absent (older LiteLLM), failed, rebound."""
    return {
        "wrapped": _status["wrapped"],
        "absent": _status["absent"],
        "failed": dict(_status["failed"]),
        "rebound": _status["rebound"],
    }
