"""Attach LiteLLM attribution whenever litellm is imported, before or after tokenmeter.

``import tokenmeter`` does not import litellm (it takes seconds). If litellm is
already imported, it is instrumented at once; otherwise a finder on
``sys.meta_path`` waits for ``import litellm`` and instruments it the moment its
module has finished loading, before any ``from litellm import completion``
elsewhere can bind the unwrapped function.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from types import MappingProxyType, ModuleType

from ._errors import internal_errors_swallowed, logger
from ._importhook import AfterImport
from ._unattributed import set_unattributed

_wanted = False


def _loaded(module: ModuleType) -> None:
    """litellm, or tokenmeter's LiteLLM adapter (which imports litellm), has loaded."""
    if "litellm" not in sys.modules:
        return
    adapter = sys.modules.get(_ADAPTER)
    if adapter is not None and module is not adapter and _initializing(adapter):
        # The adapter's own import loaded litellm: it is half made until it returns, and
        # LiteLLM is instrumented when it has loaded (this function, called again).
        return
    _finder.remove()
    if _wanted:
        _instrument_now()


def _initializing(module: ModuleType) -> bool:
    """Whether ``module``'s body is still running (an import of it in progress)."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


_ADAPTER = "tokenmeter._litellm"
_finder = AfterImport(("litellm", _ADAPTER), _loaded)


def _instrument_now() -> None:
    _failure[0] = None
    try:
        with internal_errors_swallowed("litellm instrumentation"):
            try:
                from . import _litellm

                _litellm.request_stream_usage(_stream_usage[0])
                _litellm.instrument()
            except Exception as e:
                _failure[0] = f"{type(e).__name__}: {e}"
                raise
    finally:
        with internal_errors_swallowed("instrumentation warning"):
            _warn_unattributed()


_failure: list[str | None] = [None]
_warned: set[str] = set()


def _warn_unattributed() -> None:
    """Warn once (``tokenmeter`` logger, WARNING) for each entry point left unattributed."""
    status = instrumented()
    set_unattributed(status.failed)
    for name, reason in status.failed.items():
        if name in _warned:
            continue
        _warned.add(name)
        logger.warning(
            "tokenmeter: LiteLLM calls through %s are not attributed to scopes (%s)", name, reason
        )


class Instrumentation:
    """What ``tm.instrumented()`` found: true when LiteLLM calls are attributed.

    Truthy exactly when attribution is on: wanted, and either LiteLLM is not
    imported yet (it will be instrumented on import) or at least one of its entry
    points is wrapped. ``wrapped`` names the wrapped entry points
    (``"litellm.completion"``, ``"Router.acompletion"``,
    ``"CustomStreamWrapper.__next__"``, ...); ``failed`` maps each entry point that
    could not be wrapped to the reason (its calls are not attributed); ``absent``
    names those the installed LiteLLM does not have (an older release: nothing to
    attribute); ``rebound`` names the early ``from litellm import completion``
    bindings found in other modules and wrapped; ``pending`` is true while LiteLLM
    is not imported yet. ``complete`` is true when on and nothing failed.
    """

    __slots__ = ("absent", "failed", "pending", "rebound", "wanted", "wrapped")

    def __init__(
        self,
        wanted: bool,
        pending: bool,
        wrapped: tuple[str, ...] = (),
        absent: tuple[str, ...] = (),
        failed: Mapping[str, str] | None = None,
        rebound: tuple[str, ...] = (),
    ) -> None:
        self.wanted = wanted
        self.pending = pending
        self.wrapped = wrapped
        self.absent = absent
        self.failed: Mapping[str, str] = MappingProxyType(dict(failed or {}))
        self.rebound = rebound

    def __bool__(self) -> bool:
        return self.wanted and (self.pending or bool(self.wrapped))

    @property
    def complete(self) -> bool:
        """On, and no entry point failed."""
        return bool(self) and not self.failed

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bool):
            return bool(self) is other
        if isinstance(other, Instrumentation):
            return (self.wanted, self.pending, self.wrapped, self.absent, dict(self.failed)) == (
                other.wanted,
                other.pending,
                other.wrapped,
                other.absent,
                dict(other.failed),
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash(bool(self))

    def __repr__(self) -> str:
        if not self.wanted:
            return "Instrumentation(off)"
        if self.pending:
            return "Instrumentation(on: when litellm is imported)"
        parts = [f"{len(self.wrapped)} wrapped"]
        if self.failed:
            parts.append("failed: " + ", ".join(sorted(self.failed)))
        if self.absent:
            parts.append(f"{len(self.absent)} absent in this LiteLLM")
        return f"Instrumentation({'on' if self else 'off'}: {'; '.join(parts)})"


def instrument() -> None:
    """Attribute LiteLLM calls to scopes (on by default): now, or as soon as litellm is imported."""
    global _wanted
    _wanted = True
    if "litellm" in sys.modules and hasattr(sys.modules["litellm"], "completion"):
        _finder.remove()
        _instrument_now()
    else:
        _finder.install()


def uninstrument() -> None:
    """Stop attributing LiteLLM calls: litellm's functions are put back as they were."""
    global _wanted
    _wanted = False
    _finder.remove()
    set_unattributed({})  # off on purpose: nothing the user asked for goes unattributed
    if "tokenmeter._litellm" in sys.modules:
        from . import _litellm

        _litellm.uninstrument()


def instrumented() -> Instrumentation:
    """Whether LiteLLM calls are attributed (or will be, once litellm is imported).

    Truthy or falsy as that answer; it also tells which entry points are wrapped
    and which failed (see `Instrumentation`).
    """
    if not _wanted:
        return Instrumentation(False, False)
    if "tokenmeter._litellm" not in sys.modules:
        if _failure[0] is not None:
            return Instrumentation(True, False, failed={"litellm": _failure[0]})
        return Instrumentation(True, True)
    from . import _litellm

    st = _litellm.status()
    failed = dict(st["failed"])
    if _failure[0] is not None:
        failed.setdefault("litellm", _failure[0])
    return Instrumentation(
        True,
        False,
        wrapped=st["wrapped"],
        absent=st["absent"],
        failed=failed,
        rebound=st["rebound"],
    )


def request_stream_usage(enabled: bool = True) -> None:
    """Ask providers for a final usage chunk on streams; see docs/litellm.md."""
    _stream_usage[0] = bool(enabled)
    if "tokenmeter._litellm" in sys.modules:
        from . import _litellm

        _litellm.request_stream_usage(enabled)


_stream_usage = [True]

if os.environ.get("TOKENMETER_INSTRUMENT_LITELLM", "1").lower() not in ("0", "false", "no", "off"):
    instrument()
