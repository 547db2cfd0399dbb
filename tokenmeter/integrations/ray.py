"""Ray: the scope carried into remote tasks and actor method calls, their usage back.

Use ``tokenmeter.integrations.ray.remote`` where you would use ``ray.remote``::

    from tokenmeter.integrations import ray as tmray

    @tmray.remote                 # or @tmray.remote(num_cpus=1, ...)
    def label(text): ...

    @tmray.remote
    class Critic: ...

    with tm.track("pipeline"):
        labels = ray.get([label.remote(t) for t in texts])

A task (or actor method call) started inside a scope runs in that scope's path
on its worker, in a fresh meter; what it counted rides back inside its pickled
result and lands in the tree of the process that started it when the result is
deserialized there (``ray.get``), once, however often the result is read.
Remote calls made inside a task land in that task's usage and come back with
it. For Ray Data and other code that runs your function itself, see `collect`.

Requires the ``ray`` extra (``pip install tokenmeter[ray]``); ``import
tokenmeter`` never imports ray.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import ray

from tokenmeter import _carry
from tokenmeter._errors import internal_errors_swallowed

__all__ = ["ActorClass", "ActorHandle", "Collector", "RemoteFunction", "collect", "remote"]

T = TypeVar("T")


def _context() -> _carry.Context | None:
    with internal_errors_swallowed("carrying the scope into a Ray task"):
        return _carry.context(land_once=True)
    return None


def _run(fn: Callable[..., Any], ctx: _carry.Context | None, args: Any, kwargs: Any) -> Any:
    if ctx is None:
        return fn(*args, **kwargs)
    return _carry.run_job(fn, ctx, args, kwargs)


def _split(result: Any, n: int) -> Any:
    """A carried result of a task with ``num_returns=n``: the usage rides on the first value."""
    if not isinstance(result, _carry.Carrier):
        return result
    values = list(result.value)
    if values and len(values) == n:
        values[0] = _carry.Carrier(values[0], result.target, result.blob)
        return tuple(values)
    return result.value


def _task_for(fn: Callable[..., Any], num_returns: int) -> Callable[..., Any]:
    def task(__tokenmeter_context: Any, *args: Any, **kwargs: Any) -> Any:
        result = _run(fn, __tokenmeter_context, args, kwargs)
        return result if num_returns == 1 else _split(result, num_returns)

    # Ray names the task after these; not functools.wraps: its __wrapped__ would
    # make Ray check the arguments against fn's signature, without the context.
    for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
        setattr(task, attr, getattr(fn, attr, getattr(task, attr)))
    return task


def _num_returns(options: dict[str, Any]) -> int | None:
    """The number of values a task returns, or None when not carried (generators)."""
    n = options.get("num_returns", 1)
    return n if isinstance(n, int) and n >= 1 else None


class RemoteFunction:
    """A remote function whose calls carry the current scope (see `remote`)."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self._fn = fn
        self._options = options
        n = _num_returns(options)
        self._carried = n is not None
        target = _task_for(fn, n) if n is not None else fn
        self._remote: Any = ray.remote(**options)(target) if options else ray.remote(target)
        functools.update_wrapper(self, fn, updated=())

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Start the task in the current scope; returns Ray's ObjectRef(s)."""
        if not self._carried:
            return self._remote.remote(*args, **kwargs)
        return self._remote.remote(_context(), *args, **kwargs)

    def options(self, **options: Any) -> RemoteFunction:
        """The same function with other Ray options (``num_cpus``, ``num_returns``, ...)."""
        return RemoteFunction(self._fn, {**self._options, **options})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"remote function {self._fn.__name__!r} is called with .remote(...)")


def _actor_class_for(cls: type) -> type:
    class Carried(cls):  # type: ignore[misc]
        def __init__(self, __tokenmeter_context: Any, *args: Any, **kwargs: Any) -> None:
            result = _run(super().__init__, __tokenmeter_context, args, kwargs)
            if isinstance(result, _carry.Carrier):
                # The constructor's usage goes back with the next result of this process.
                _carry.FOREIGN.append((result.target, result.blob))

        def _tokenmeter_call(
            self, __tokenmeter_context: Any, name: str, args: Any, kwargs: Any
        ) -> Any:
            return _run(getattr(self, name), __tokenmeter_context, args, kwargs)

    for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
        setattr(Carried, attr, getattr(cls, attr))
    return Carried


class ActorClass:
    """An actor class whose constructor and method calls carry the current scope."""

    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = options
        carried = _actor_class_for(cls)
        self._remote: Any = ray.remote(**options)(carried) if options else ray.remote(carried)

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        """Create the actor; its constructor runs in the current scope."""
        return ActorHandle(self._remote.remote(_context(), *args, **kwargs), self._cls)

    def options(self, **options: Any) -> ActorClass:
        """The same actor class with other Ray options."""
        return ActorClass(self._cls, {**self._options, **options})


class ActorHandle:
    """A handle to a carried actor: ``handle.method.remote(...)`` carries the current scope.

    ``handle.handle`` is Ray's own handle (for ``ray.kill`` and the like). Async
    methods are called through Ray directly, without carrying the scope.
    """

    def __init__(self, handle: Any, cls: type) -> None:
        self.handle = handle
        self._cls = cls

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActorHandle, (self.handle, self._cls))

    def __getattr__(self, name: str) -> ActorMethod:
        if name.startswith("__"):
            raise AttributeError(name)
        if inspect.iscoroutinefunction(getattr(self._cls, name, None)):
            return getattr(self.handle, name)  # type: ignore[no-any-return]
        return ActorMethod(self.handle, name, {})

    def __repr__(self) -> str:
        return f"<tokenmeter ActorHandle {self._cls.__name__} {self.handle!r}>"


class ActorMethod:
    """One method of a carried actor."""

    def __init__(self, handle: Any, name: str, options: dict[str, Any]) -> None:
        self._handle, self._name, self._options = handle, name, options

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method in the current scope; returns Ray's ObjectRef."""
        method = self._handle._tokenmeter_call
        if self._options:
            method = method.options(**self._options)
        return method.remote(_context(), self._name, args, kwargs)

    def options(self, **options: Any) -> ActorMethod:
        """The same method with other Ray call options."""
        return ActorMethod(self._handle, self._name, {**self._options, **options})


def remote(*args: Any, **options: Any) -> Any:
    """``ray.remote`` whose tasks and actor calls carry the current scope and bring usage back.

    Used bare (``@remote``) or with Ray's options (``@remote(num_cpus=1)``).
    Tasks with ``num_returns`` above 1 send their usage with the first value;
    generator tasks (``num_returns="dynamic"``/``"streaming"``) run without it.
    """
    if args:
        if len(args) != 1 or options or not callable(args[0]):
            raise TypeError("remote() takes a function or a class, or Ray's options as keywords")
        return _make(args[0], {})
    return functools.partial(_make, options=options)


def _make(target: Any, options: dict[str, Any]) -> Any:
    if inspect.isclass(target):
        return ActorClass(target, options)
    if not callable(target):
        raise TypeError(f"remote() takes a function or a class, got {target!r}")
    return RemoteFunction(target, options)


@ray.remote(num_cpus=0)
class _UsageCollector:
    """Holds usage sent by functions Ray runs itself (Ray Data), until the driver takes it."""

    def __init__(self) -> None:
        self._items: list[tuple[Any, bytes]] = []

    def add(self, target: Any, blob: bytes) -> None:
        self._items.append((target, blob))

    def drain(self) -> list[tuple[Any, bytes]]:
        items, self._items = self._items, []
        return items


class Collector:
    """Brings back the usage of functions Ray calls for you (``map_batches``); see `collect`."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    def carry(self, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn`` bound to the current scope; its usage is sent to this collector."""
        return _Sent(fn, _context(), self._actor)

    def land(self) -> None:
        """Add the usage received so far to this process's tree."""
        for target, blob in ray.get(self._actor.drain.remote()):
            with internal_errors_swallowed("adding a Ray function's usage"):
                _carry.land(target, blob)


class _Sent:
    """A function run by Ray in the scope it was bound in, sending its usage to a collector."""

    def __init__(self, fn: Callable[..., Any], ctx: Any, actor: Any) -> None:
        self.fn, self.ctx, self.actor = fn, ctx, actor
        functools.update_wrapper(self, fn, updated=())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = _run(self.fn, self.ctx, args, kwargs)
        except Exception as exc:
            usage = exc.__dict__.pop("_tokenmeter_usage", None)
            if isinstance(usage, _carry.UsageCarrier):
                ray.get(self.actor.add.remote(usage.target, usage.blob))
            elif isinstance(exc, _carry.CarriedError):
                ray.get(self.actor.add.remote(exc.target, exc.blob))
                raise exc.exc from None
            raise
        if isinstance(result, _carry.Carrier):
            ray.get(self.actor.add.remote(result.target, result.blob))
            return result.value
        return result


@contextmanager
def collect() -> Iterator[Collector]:
    """A collector for code Ray runs itself, landed in this process's tree on exit.

    ::

        with tm.track("embed"), tmray.collect() as usage:
            ds.map_batches(usage.carry(embed_batch)).materialize()

    Each call of the carried function runs in the scope current at ``carry()``
    and sends its usage to a small actor before returning; leaving the block
    adds everything received to the tree. Consume the dataset inside the block.
    """
    actor = _UsageCollector.remote()  # type: ignore[attr-defined]
    collector = Collector(actor)
    try:
        yield collector
    finally:
        try:
            collector.land()
        finally:
            ray.kill(actor)
