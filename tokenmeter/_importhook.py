"""A finder on ``sys.meta_path`` that runs a function on a module the moment it has loaded.

LiteLLM instrumentation (`_instrument`) and the process-pool patches (`_procs`) use
it to act on a module right after its body has run, before any other module can
bind a name from it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import importlib.machinery


class AfterImport:
    """Finds nothing itself: wraps the real loader of each watched module to call ``then``.

    A meta path finder by protocol (``find_spec``), not by subclassing
    ``importlib.abc.MetaPathFinder``: importing that module costs ~10 ms.
    """

    def __init__(self, names: Collection[str], then: Callable[[ModuleType], None]) -> None:
        self.names = frozenset(names)
        self.then = then

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
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
        then = self.then

        def exec_module(module: ModuleType) -> None:
            original_exec(module)
            then(module)

        loader.exec_module = exec_module
        return spec

    def install(self) -> None:
        """Put the finder first on ``sys.meta_path`` (once)."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def remove(self) -> None:
        """Take the finder off ``sys.meta_path`` (if it is there)."""
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
