"""Carry a scope into another process and bring the usage made there back with the result.

The submitting side calls `context()`: a small picklable tuple naming the meter
(by a key valid in this process), the scope's path, its module/operation/
attributes, whether records are kept, and its budgets with their tallies so far.
The other side runs the job with `run_job`: in a fresh meter of its own, at that
path, so nothing is shared between jobs of a reused worker. Whatever the job
counted travels back inside the pickled result (or exception): unpickling it,
in the submitting process, adds it to the meter there (`_subtree.add_tree`)
before the result is handed to anyone, so a caller sees its job's usage as soon
as it sees its result, and exactly once (pickled results are unpickled once; Ray
results, which may be read more than once, carry an id that lands once).

Usage that arrives in a process that did not submit the job (a Ray object
passed from one task to another) is kept and forwarded with the next result
this process sends back.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import secrets
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._drain import drain_queued
from ._errors import RAISE_INTERNAL_ERRORS, internal_errors_swallowed
from ._frame import Frame
from ._meter import DEFAULT_ROOT_FRAME, Meter
from ._scope import CURRENT, IN_CALL, restore
from ._subtree import Tree, add_tree, export_tree
from ._tree import (
    budget_tally,
    child_locked,
    frame_tables,
    set_budget_tally_locked,
    settle_locked,
    tree_lock,
    update_budgets_locked,
)

if TYPE_CHECKING:
    from ._limits import Limits

logger = logging.getLogger("tokenmeter")

#: (process token, meter key, land-once): where a job's usage goes back to.
Target = tuple[bytes, int, bool]
#: A job's usage on its way back: the payload itself, or pickled when it holds
#: records (whose metadata may not pickle: see `_dumps`).
Blob = Any
#: (target, path, module, operation, attributes, max records or 0, budgets).
Context = tuple[
    Target,
    tuple[str, ...],
    str | None,
    str | None,
    dict[str, Any],
    int,
    tuple[tuple[int, Any, list[int], int], ...],
]

#: This process, for targets: a pid can repeat on another machine or after a fork.
_TOKEN = secrets.token_bytes(8)
_uids = itertools.count()
#: Meters jobs were submitted from, by key; weak, so a dropped meter is let go.
_METERS: weakref.WeakValueDictionary[int, Meter] = weakref.WeakValueDictionary()
#: Usage that arrived here for another process: forwarded with the next result.
FOREIGN: list[tuple[Target, Blob]] = []
#: Ids of land-once payloads already added here.
_LANDED: set[tuple[bytes, int]] = set()
_lock = threading.RLock()

#: The last frame a context was made for, and the parts of it that do not change.
_cache: list[Any] = [None, None]


def _after_fork_in_child() -> None:
    # A lock another thread held at the fork stays held in the child: start a new one.
    global _TOKEN, _uids, _lock
    _lock = threading.RLock()
    _TOKEN = secrets.token_bytes(8)
    _uids = itertools.count()
    FOREIGN.clear()
    _LANDED.clear()
    _cache[:] = [None, None]


os.register_at_fork(after_in_child=_after_fork_in_child)


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


def _static_parts(frame: Frame) -> tuple[int, tuple[str, ...], dict[str, Any]]:
    """The meter key, path and picklable attributes of ``frame`` (cached per frame)."""
    cached = _cache
    if cached[0] is frame:
        parts: tuple[int, tuple[str, ...], dict[str, Any]] = cached[1]
        return parts
    meter = frame.scope.meter
    key = id(meter)
    with _lock:
        if _METERS.get(key) is not meter:
            _METERS[key] = meter
    attributes = dict(frame.attributes)
    if attributes and not _picklable(attributes):
        dropped = [k for k, v in attributes.items() if not _picklable(v)]
        for k in dropped:
            del attributes[k]
        logger.debug("scope attributes %s cannot be pickled: not carried to the worker", dropped)
    parts = (key, frame.scope.path, attributes)
    cached[:] = [frame, parts]
    return parts


def _travelling_limits(limits: Limits) -> Limits:
    """``limits`` as they travel: an ``on_exceed`` that cannot be pickled becomes "raise"."""
    if callable(limits.on_exceed) and not _picklable(limits.on_exceed):
        import attrs

        return attrs.evolve(limits, on_exceed="raise")
    return limits


def context(land_once: bool = False) -> Context:
    """What a job started now in another process needs to run in the current scope."""
    cur = CURRENT.get()
    frame = DEFAULT_ROOT_FRAME if cur is None else cur
    key, path, attributes = _static_parts(frame)
    meter = frame.scope.meter
    budgets: tuple[tuple[int, Any, list[int], int], ...] = ()
    if frame.budgets:
        drain_queued()
        with tree_lock(meter):
            settle_locked(meter)
            tallies = [(s, *budget_tally(s)) for s in frame.budgets]
            budgets = tuple(
                (len(s.path), s.limits, list(incl), started)
                for s, incl, started in tallies
                if s.limits is not None and incl is not None
            )
        budgets = tuple((d, _travelling_limits(lim), i, n) for d, lim, i, n in budgets)
    records = meter.max_records if meter.keep_records else 0
    return (
        (_TOKEN, key, land_once),
        path,
        frame.module,
        frame.operation,
        attributes,
        records,
        budgets,
    )


def _job_frame(ctx: Context) -> Frame:
    """A fresh meter with the context's path (and budgets), and the frame at its end."""
    _target, path, module, operation, attributes, records, budgets = ctx
    meter = Meter(keep_records=bool(records), max_records=records or 1)
    node = meter.root
    nodes = [node]
    with tree_lock(meter):
        for name in path:
            node = child_locked(node, name)
            nodes.append(node)
        for depth, limits, incl, started in budgets:
            s = nodes[depth]
            s.limits = limits
            set_budget_tally_locked(s, list(incl), started)
        if budgets:
            # Every node's list of budgeted nodes above it, scopes the job opens included.
            update_budgets_locked(meter.root)
    return Frame(node, module, operation, attributes, node.budgets, None, None, frame_tables(node))


def run_job(fn: Callable[..., Any], ctx: Context, args: Any, kwargs: Mapping[str, Any]) -> Any:
    """Run ``fn(*args, **kwargs)`` in the context's scope; its usage rides on what it returns.

    Runs in the worker. The result comes back wrapped so that unpickling it lands
    the usage; an exception raised by ``fn`` is re-raised carrying the usage too.
    """
    frame: Frame | None = None
    with internal_errors_swallowed("starting a job in its scope"):
        frame = _job_frame(ctx)
    if frame is None:
        return fn(*args, **kwargs)
    token = CURRENT.set(frame)
    call_token = IN_CALL.set(None)
    try:
        value = fn(*args, **kwargs)
    except Exception as exc:
        carried = _carry_error(exc, ctx[0], frame.scope.meter)
        if carried is exc:
            raise
        raise carried.with_traceback(exc.__traceback__) from None
    finally:
        IN_CALL.reset(call_token)
        restore(token)
    return _carry_value(value, ctx[0], frame.scope.meter)


class Job:
    """``fn`` bound to a `context()`: called in a worker, it runs there via `run_job`."""

    __slots__ = ("ctx", "fn")

    def __init__(self, fn: Callable[..., Any], ctx: Context) -> None:
        self.fn = fn
        self.ctx = ctx

    def __reduce__(self) -> tuple[Any, ...]:
        return (Job, (self.fn, self.ctx))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return run_job(self.fn, self.ctx, args, kwargs)

    def __repr__(self) -> str:
        return f"<tokenmeter job {self.fn!r} in {'/'.join(self.ctx[1]) or '<root>'!r}>"


# -- the way back ------------------------------------------------------------------


def _take_foreign() -> list[tuple[Target, Blob]]:
    with _lock:
        taken = FOREIGN[:]
        del FOREIGN[:]
    return taken


def _payload(meter: Meter) -> tuple[tuple[bytes, int], Tree, list[tuple[Target, Blob]]] | None:
    """What the job's meter holds, plus usage waiting to be forwarded; None if nothing."""
    tree = export_tree(meter)
    forwarded = _take_foreign() if FOREIGN else []
    if not tree[0] and not forwarded:
        return None
    return ((_TOKEN, next(_uids)), tree, forwarded)


def _dumps(payload: Any) -> Blob:
    """The payload as it travels: as is (plain tuples, ints, strings), or pickled with records.

    Records carry the caller's metadata and attributes, which may not pickle: they
    are pickled here, where a failure can be caught, and left out if they fail (the
    report then counts them as dropped), so the job's result itself always pickles.
    """
    if not payload[1][3]:
        return payload
    try:
        return pickle.dumps(payload, pickle.HIGHEST_PROTOCOL)
    except Exception:
        uid, (root, first, last, _records, seen), forwarded = payload
        logger.debug("call records cannot be pickled: sent without them", exc_info=True)
        return (uid, (root, first, last, [], seen), forwarded)


class Carrier:
    """A job's return value with its usage: unpickles as the value itself, usage landed."""

    __slots__ = ("blob", "target", "value")

    def __init__(self, value: Any, target: Target, blob: Blob) -> None:
        self.value, self.target, self.blob = value, target, blob

    def __reduce__(self) -> tuple[Any, ...]:
        return (_landed_value, (self.value, self.target, self.blob))


class UsageCarrier:
    """A job's usage, riding in its exception's ``__dict__``: lands when unpickled."""

    __slots__ = ("blob", "target")

    def __init__(self, target: Target, blob: Blob) -> None:
        self.target, self.blob = target, blob

    def __reduce__(self) -> tuple[Any, ...]:
        return (_landed_usage, (self.target, self.blob))


class CarriedError(Exception):
    """Carries an exception whose class pickles itself its own way, with the job's usage.

    Unpickles as the original exception. Exceptions pickled the default way carry
    the usage in their ``__dict__`` instead, and are re-raised unchanged.
    """

    def __init__(self, exc: BaseException, target: Target, blob: Blob) -> None:
        super().__init__(f"{type(exc).__qualname__}: {exc}")
        self.exc, self.target, self.blob = exc, target, blob

    def __reduce__(self) -> tuple[Any, ...]:
        return (_landed_error, (self.exc, self.target, self.blob))


def _carry_value(value: Any, target: Target, meter: Meter) -> Any:
    payload = None
    with internal_errors_swallowed("sending a job's usage back"):
        payload = _payload(meter)
    if payload is None:
        return value
    return Carrier(value, target, _dumps(payload))


def _default_pickling(exc: BaseException) -> bool:
    cls = type(exc)
    return (
        cls.__reduce__ is BaseException.__reduce__
        and cls.__reduce_ex__ is BaseException.__reduce_ex__
        and cls.__setstate__ is BaseException.__setstate__
    )


def _carry_error(exc: Exception, target: Target, meter: Meter) -> Exception:
    payload = None
    with internal_errors_swallowed("sending a failed job's usage back"):
        payload = _payload(meter)
    if payload is None:
        return exc
    blob = _dumps(payload)
    if _default_pickling(exc):
        exc.__dict__["_tokenmeter_usage"] = UsageCarrier(target, blob)
        return exc
    return CarriedError(exc, target, blob)


def land(target: Target, blob: Blob) -> None:
    """Add a job's usage to the meter it was submitted from (or keep it to forward)."""
    token, key, land_once = target
    if token != _TOKEN:
        with _lock:
            FOREIGN.append((target, blob))
        return
    uid, tree, forwarded = pickle.loads(blob) if isinstance(blob, bytes) else blob
    if land_once:
        with _lock:
            if uid in _LANDED:
                return
            _LANDED.add(uid)
    meter = _METERS.get(key)
    if meter is None:
        logger.warning("tokenmeter: usage came back for a meter that no longer exists; dropped")
    else:
        add_tree(meter, tree)
    for t, b in forwarded:
        land(t, b)


def _landed_value(value: Any, target: Target, blob: Blob) -> Any:
    with internal_errors_swallowed("adding a job's usage"):
        land(target, blob)
    return value


def _landed_usage(target: Target, blob: Blob) -> None:
    with internal_errors_swallowed("adding a failed job's usage"):
        land(target, blob)


def _landed_error(exc: BaseException, target: Target, blob: Blob) -> BaseException:
    with internal_errors_swallowed("adding a failed job's usage"):
        land(target, blob)
    return exc


__all__ = ["RAISE_INTERNAL_ERRORS", "CarriedError", "Context", "Job", "context", "run_job"]
