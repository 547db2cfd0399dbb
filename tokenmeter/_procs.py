"""Carry the current scope into process-pool jobs, and their usage back with each result.

``ProcessPoolExecutor.submit`` (which its ``map`` uses) and ``multiprocessing``
``Pool.apply_async``, ``Pool._map_async`` (behind ``map``, ``map_async``,
``starmap``, ``starmap_async``), ``imap`` and ``imap_unordered`` (``apply`` goes
through ``apply_async``) are wrapped so that a job submitted inside a scope runs
in that scope in the worker, and the usage it made lands in the submitting
process's tree before its result is handed back (see `_carry`). ``ThreadPool``
(a ``Pool`` on threads) gets the thread treatment instead: its jobs are bound to
the scope, like ``ThreadPoolExecutor``'s.

``import tokenmeter`` imports neither ``concurrent.futures.process`` nor
``multiprocessing.pool`` (tens of milliseconds): a finder on ``sys.meta_path``
wraps them when they are first imported. Turn it off with
``propagate_to_processes(False)`` or ``TOKENMETER_PROPAGATE_PROCESSES=0``.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import ModuleType
from typing import Any

from ._errors import internal_errors_swallowed
from ._importhook import AfterImport
from ._threads import bind, propagating_to_threads

_WATCHED = ("concurrent.futures.process", "multiprocessing.pool")
_enabled = False
#: (owner, attribute name) -> the original function, for each attribute replaced.
_originals: dict[tuple[type, str], Any] = {}


def _job(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` bound to the current scope for a worker process (unchanged on error)."""
    from ._carry import Job, context

    with internal_errors_swallowed("carrying the scope into a process-pool job"):
        return Job(fn, context())
    return fn


def _pool_job(pool: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    from multiprocessing.pool import ThreadPool

    if isinstance(pool, ThreadPool):
        return bind(fn) if propagating_to_threads() else fn
    return _job(fn)


def _submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    from concurrent.futures import ProcessPoolExecutor

    orig = _originals[(ProcessPoolExecutor, "submit")]
    return orig(self, _job(fn), *args, **kwargs)


def _apply_async(
    self: Any,
    func: Callable[..., Any],
    args: Sequence[Any] = (),
    kwds: Any = None,
    callback: Callable[[Any], object] | None = None,
    error_callback: Callable[[BaseException], object] | None = None,
) -> Any:
    from multiprocessing.pool import Pool

    orig = _originals[(Pool, "apply_async")]
    return orig(
        self, _pool_job(self, func), args, {} if kwds is None else kwds, callback, error_callback
    )


def _map_async(
    self: Any,
    func: Callable[..., Any],
    iterable: Iterable[Any],
    mapper: Callable[..., Any],
    chunksize: int | None = None,
    callback: Callable[[Any], object] | None = None,
    error_callback: Callable[[BaseException], object] | None = None,
) -> Any:
    # ``mapper`` runs a whole chunk: carrying it (not ``func``) brings a chunk's usage
    # back in one piece, including what the items before a failing one made.
    from multiprocessing.pool import Pool

    orig = _originals[(Pool, "_map_async")]
    return orig(self, func, iterable, _pool_job(self, mapper), chunksize, callback, error_callback)


def _chunks(func: Callable[..., Any], iterable: Iterable[Any], size: int) -> Iterator[Any]:
    """``(func, chunk)`` for each ``size`` items of ``iterable``, as ``Pool`` chunks them."""
    it = iter(iterable)
    while chunk := tuple(itertools.islice(it, size)):
        yield (func, chunk)


def _imap_with(name: str) -> Callable[..., Any]:
    def imap(
        self: Any, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int = 1
    ) -> Any:
        from multiprocessing.pool import Pool, mapstar  # type: ignore[attr-defined]

        orig = _originals[(Pool, name)]
        if chunksize == 1 or not isinstance(chunksize, int) or chunksize < 1:
            return orig(self, _pool_job(self, func), iterable, chunksize)
        # As Pool does it (chunks run by ``mapstar``), with the chunk runner carried.
        batches = _chunks(func, iterable, chunksize)
        chunks = orig(self, _pool_job(self, mapstar), batches, 1)
        return _flatten(chunks)

    imap.__name__ = imap.__qualname__ = name
    imap.__doc__ = f"``Pool.{name}``, with each chunk run in the current scope."
    return imap


def _flatten(chunks: Iterable[Iterable[Any]]) -> Iterator[Any]:
    for chunk in chunks:
        yield from chunk


def _replacements(module: ModuleType) -> list[tuple[type, str, Any]]:
    if module.__name__ == "concurrent.futures.process":
        return [(module.ProcessPoolExecutor, "submit", _submit)]
    pool = module.Pool
    return [
        (pool, "apply_async", _apply_async),
        (pool, "_map_async", _map_async),
        (pool, "imap", _imap_with("imap")),
        (pool, "imap_unordered", _imap_with("imap_unordered")),
    ]


def _patch(module: ModuleType) -> None:
    with internal_errors_swallowed(f"wrapping {module.__name__}"):
        for owner, name, wrapper in _replacements(module):
            if (owner, name) not in _originals:
                _originals[(owner, name)] = owner.__dict__[name]
                setattr(owner, name, wrapper)


def _unpatch() -> None:
    for (owner, name), orig in _originals.items():
        setattr(owner, name, orig)
    _originals.clear()


def _pool_module_loaded(module: ModuleType) -> None:
    if _enabled:
        _patch(module)


_finder = AfterImport(_WATCHED, _pool_module_loaded)


def propagate_to_processes(enabled: bool = True) -> None:
    """Turn on or off carrying the scope into process-pool jobs and their usage back.

    On (the default), a job submitted to ``ProcessPoolExecutor`` or
    ``multiprocessing.Pool`` inside a scope runs in that scope in the worker, and
    the usage it made lands here, in that scope, before its result is returned.
    """
    global _enabled
    _enabled = bool(enabled)
    if _enabled:
        _finder.install()
        for name in _WATCHED:
            module = sys.modules.get(name)
            if module is not None:
                _patch(module)
    else:
        _finder.remove()
        _unpatch()


def propagating_to_processes() -> bool:
    """Whether the scope is carried into process-pool jobs automatically."""
    return _enabled


if os.environ.get("TOKENMETER_PROPAGATE_PROCESSES", "1").lower() not in ("0", "false", "no", "off"):
    propagate_to_processes(True)
