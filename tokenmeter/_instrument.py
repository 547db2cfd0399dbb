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
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._errors import internal_errors_swallowed

if TYPE_CHECKING:
    import importlib.machinery

_wanted = False


class _LiteLLMFinder:
    """Finds nothing itself: wraps the real loader of ``litellm`` to instrument it after loading.

    A meta path finder by protocol (``find_spec``), not by subclassing
    ``importlib.abc.MetaPathFinder``: importing that module costs ~10 ms.
    """

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "litellm":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: importlib.machinery.ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader: Any = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original_exec = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original_exec(module)
            _remove_finder()
            if _wanted:
                _instrument_now()

        loader.exec_module = exec_module
        return spec


_finder = _LiteLLMFinder()


def _remove_finder() -> None:
    try:
        sys.meta_path.remove(_finder)
    except ValueError:
        pass


def _instrument_now() -> None:
    with internal_errors_swallowed("litellm instrumentation"):
        from . import _litellm

        _litellm.request_stream_usage(_stream_usage[0])
        _litellm.instrument()


def instrument() -> None:
    """Attribute LiteLLM calls to scopes (on by default): now, or as soon as litellm is imported."""
    global _wanted
    _wanted = True
    if "litellm" in sys.modules and hasattr(sys.modules["litellm"], "completion"):
        _remove_finder()
        _instrument_now()
    elif _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def uninstrument() -> None:
    """Stop attributing LiteLLM calls: litellm's functions are put back as they were."""
    global _wanted
    _wanted = False
    _remove_finder()
    if "tokenmeter._litellm" in sys.modules:
        from . import _litellm

        _litellm.uninstrument()


def instrumented() -> bool:
    """Whether LiteLLM calls are attributed (or will be, once litellm is imported)."""
    return _wanted


def request_stream_usage(enabled: bool = True) -> None:
    """Ask providers for a final usage chunk on streams; see docs/litellm.md."""
    _stream_usage[0] = bool(enabled)
    if "tokenmeter._litellm" in sys.modules:
        from . import _litellm

        _litellm.request_stream_usage(enabled)


_stream_usage = [True]

if os.environ.get("TOKENMETER_INSTRUMENT_LITELLM", "1").lower() not in ("0", "false", "no", "off"):
    instrument()
