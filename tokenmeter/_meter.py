"""The meter: one call tree, its lock, its records, and the API acting on it."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import _events
from ._acc import (
    ACC_SIZE,
    CACHE_READ,
    CACHE_WRITE,
    CALLS,
    COST,
    ESTIMATED,
    FAILED,
    INPUT,
    OUTPUT,
    REASONING,
    UNPRICED,
    add_acc,
    cost_to_units,
)
from ._errors import internal_errors_swallowed
from ._scope import (
    CURRENT,
    DimKey,
    Frame,
    OnExceed,
    Scope,
    check_budgets_locked,
)

if TYPE_CHECKING:
    from ._pricing import price_tokens, provider_for
    from ._record import (
        CallRecord,
        check_flag,
        check_label,
        check_metadata,
        check_timestamp,
        validate_counts,
    )
    from ._report import Report
    from ._track import Track

#: Whether `_load_record_support` has run.
_record_support = False


def _load_record_support() -> None:
    """Load what ``record()`` needs beyond the core: ``_record`` and ``_pricing``.

    They import attrs, which ``import tokenmeter`` does not: the first ``record()``
    loads them and binds these module globals, so later calls pay nothing (an
    import statement per call would cost microseconds).
    """
    global CallRecord, check_label, check_timestamp, validate_counts, price_tokens, provider_for
    global check_flag, check_metadata, _record_support
    from ._pricing import price_tokens, provider_for
    from ._record import (
        CallRecord,
        check_flag,
        check_label,
        check_metadata,
        check_timestamp,
        validate_counts,
    )

    _record_support = True


_EMPTY: Mapping[str, Any] = {}

#: Applies a batch of deferred LiteLLM results to a meter's tree; set by
#: `tokenmeter._litellm` when it loads (nothing is deferred before then).
_apply_pending: Callable[[Meter, list[tuple[Any, ...]]], None] | None = None

_ZEROS = (0,) * ACC_SIZE

#: A meter settles its deferred results once this many are waiting.
PENDING_BATCH = 256

#: Default bound on kept per-call records (when ``keep_records`` is on).
DEFAULT_MAX_RECORDS = 100_000


class Meter:
    """One independent call tree of usage.

    The module functions (``tokenmeter.track``, ``tokenmeter.report``, ...) act on
    a default meter; make a ``Meter()`` for an isolated tree (tests, libraries,
    servers with many tenants).

    Args:
        keep_records: keep each call's `CallRecord` for export. Off by
            default: the tree's memory then grows with the number of scopes,
            not of calls.
        max_records: with ``keep_records``, keep at most this many of the most
            recent records (older ones are dropped and counted in the report).
    """

    def __init__(self, *, keep_records: bool = False, max_records: int = DEFAULT_MAX_RECORDS):
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise ValueError(f"max_records must be a positive integer, got {max_records!r}")
        self._lock = threading.Lock()
        self.root = Scope("", None, self)
        self._root_frame = Frame(self.root, None, None, _EMPTY, (), None)
        self.max_records = max_records
        self._records: deque[CallRecord] | None = None
        # LiteLLM results not yet added to the tree (see `_settle_locked`).
        self._pending: list[tuple[Any, ...]] = []
        self._records_seen = 0
        self._first_ts: float | None = None
        self._last_ts: float | None = None
        self.keep_records = keep_records

    def __repr__(self) -> str:
        return f"<tokenmeter.Meter scopes={sum(1 for _ in self.root.walk()) - 1}>"

    # -- configuration -------------------------------------------------------------

    @property
    def keep_records(self) -> bool:
        """Whether per-call records are kept for export (bounded by ``max_records``)."""
        return self._records is not None

    @keep_records.setter
    def keep_records(self, value: bool) -> None:
        with self._lock:
            if value and self._records is None:
                self._records = deque(maxlen=self.max_records)
                self._records_seen = 0
            elif not value:
                self._records = None

    # -- scopes -------------------------------------------------------------------

    def track(
        self,
        name: str,
        /,
        *,
        module: str | None = None,
        operation: str | None = None,
        max_tokens: int | None = None,
        max_cost_usd: float | None = None,
        max_calls: int | None = None,
        on_exceed: OnExceed = "raise",
        **attributes: Any,
    ) -> Track:
        """A scope of this meter, for ``with`` / ``async with`` (see `tokenmeter.track`)."""
        from ._track import make_track

        return make_track(
            self,
            name,
            module,
            operation,
            max_tokens,
            max_cost_usd,
            max_calls,
            on_exceed,
            attributes,
        )

    def current(self) -> Scope:
        """The innermost open scope of this meter in the current context, else its root."""
        cur = CURRENT.get()
        if cur is None:
            return self.root
        if cur.scope.meter is self:
            return cur.scope
        return self._frame_under(cur).scope

    def _frame_under(self, frame: Frame | None) -> Frame:
        """The nearest frame of this meter in ``frame``'s chain, else the root frame."""
        while frame is not None:
            if frame.scope.meter is self:
                return frame
            frame = frame.prev
        return self._root_frame

    def _current_frame(self) -> Frame:
        cur = CURRENT.get()
        if cur is None or cur.scope.meter is not self:
            return self._frame_under(cur)
        return cur

    # -- recording ----------------------------------------------------------------

    def record(
        self,
        *,
        model: str,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        provider: str | None = None,
        cost_usd: float | None = None,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        module: str | None = None,
        operation: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        failed: bool = False,
        estimated: bool = False,
        timestamp: float | None = None,
    ) -> CallRecord:
        """Record a call LiteLLM did not make, on this meter's current scope.

        See `tokenmeter.record`.
        """
        return self._record_manual(
            self._current_frame(),
            model,
            input_tokens,
            output_tokens,
            provider,
            cost_usd,
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
            module,
            operation,
            metadata,
            failed,
            estimated,
            timestamp,
        )

    def _record_manual(
        self,
        frame: Frame,
        model: object,
        input_tokens: object,
        output_tokens: object,
        provider: str | None,
        cost_usd: object,
        cache_read_tokens: object,
        cache_write_tokens: object,
        reasoning_tokens: object,
        module: str | None,
        operation: str | None,
        metadata: Mapping[str, Any] | None,
        failed: bool,
        estimated: bool,
        timestamp: float | None,
    ) -> CallRecord:
        if not _record_support:
            _load_record_support()
        if input_tokens is None:
            raise ValueError("input_tokens is required (a non-negative integer)")
        if output_tokens is None:
            raise ValueError("output_tokens is required (a non-negative integer)")
        m, i, o, cr, cw, r, cost = validate_counts(
            model,
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
            cost_usd,
        )
        metadata = check_metadata(metadata)
        failed, estimated = check_flag("failed", failed), check_flag("estimated", estimated)
        if provider is not None:
            provider = check_label("provider", provider)
        module = frame.module if module is None else check_label("module", module)
        operation = frame.operation if operation is None else check_label("operation", operation)
        ts = time.time() if timestamp is None else check_timestamp(timestamp)
        if provider is None:
            # LiteLLM names the provider whether or not it was imported yet: the
            # provider of a record never depends on import order.
            provider = provider_for(m, import_litellm=True)
        if cost is None:
            cost = price_tokens(m, provider, i, o, cr, cw, r)
        # Positional, in CallRecord's field order: matching 17 keywords would add about
        # a fifth to record()'s cost (tests/test_record.py pins each field).
        rec = CallRecord(
            m,  # model
            provider,
            i,  # input_tokens
            o,  # output_tokens
            cr,  # cache_read_tokens
            cw,  # cache_write_tokens
            r,  # reasoning_tokens
            cost,  # cost_usd
            module,
            operation,
            frame.scope.path,
            "manual",  # kind
            failed,
            estimated,
            ts,  # timestamp
            None,  # duration_s
            None,  # call_id
            frame.attributes,
            metadata,
        )
        self._add(
            frame,
            (m, provider, module, operation),
            i,
            o,
            cr,
            cw,
            r,
            None if cost is None else cost_to_units(cost),
            failed,
            estimated,
            ts,
            rec,
            False,
        )
        return rec

    def _add_record(self, frame: Frame, rec: CallRecord, reserved: bool) -> None:
        """Add a finished record to ``frame``'s scope (the one current when the call was made)."""
        self._add(
            frame,
            (rec.model, rec.provider, rec.module, rec.operation),
            rec.input_tokens,
            rec.output_tokens,
            rec.cache_read_tokens,
            rec.cache_write_tokens,
            rec.reasoning_tokens,
            None if rec.cost_usd is None else cost_to_units(rec.cost_usd),
            rec.failed,
            rec.estimated,
            rec.timestamp,
            rec,
            reserved,
        )

    def _add(
        self,
        frame: Frame,
        key: DimKey,
        input_tokens: int,
        output_tokens: int,
        cache_read: int,
        cache_write: int,
        reasoning: int,
        cost_units: int | None,
        failed: bool,
        estimated: bool,
        timestamp: float,
        rec: CallRecord | None,
        reserved: bool,
        alias: tuple[Any, Any, str | None, str | None] | None = None,
    ) -> None:
        """The hot path: add one call's numbers to its scope's tally, under the lock.

        ``alias``, if given, also files the tally in ``scope._fast`` under that key
        (LiteLLM's names for the model and provider; see `_litellm._defer`).
        """
        scope = frame.scope
        with self._lock:
            acc = scope._dims.get(key)
            if acc is None:
                acc = scope._dims[key] = [0] * ACC_SIZE
            if alias is not None and alias not in scope._fast:
                scope._fast[alias] = (id(acc), acc)
            acc[CALLS] += 1
            acc[INPUT] += input_tokens
            acc[OUTPUT] += output_tokens
            acc[CACHE_READ] += cache_read
            acc[CACHE_WRITE] += cache_write
            acc[REASONING] += reasoning
            if cost_units is None:
                acc[UNPRICED] += 1
            else:
                acc[COST] += cost_units
            if failed:
                acc[FAILED] += 1
            if estimated:
                acc[ESTIMATED] += 1
            if frame.budgets:
                one = _one_call_acc(
                    input_tokens,
                    output_tokens,
                    cache_read,
                    cache_write,
                    reasoning,
                    cost_units,
                    failed,
                    estimated,
                )
                for b in frame.budgets:
                    if b._incl is not None:
                        add_acc(b._incl, one)
            if not reserved:
                for b in frame.budgets:
                    b._started += 1
            if self._first_ts is None or timestamp < self._first_ts:
                self._first_ts = timestamp
            if self._last_ts is None or timestamp > self._last_ts:
                self._last_ts = timestamp
            records = self._records
            if records is not None:
                self._records_seen += 1
                if rec is not None:
                    records.append(rec)
        if rec is not None and _events.OBSERVERS:
            _events.emit_call(rec, frame)

    def _settle(self) -> None:
        """Add the deferred results to the tree now (takes the lock)."""
        with self._lock:
            self._settle_locked()

    def _settle_locked(self) -> None:
        """Add the deferred results to the tree; the caller holds the lock.

        LiteLLM attribution appends a plain response (its scope's tally, LiteLLM's
        usage and hidden parameters, the call's start time) to ``_pending`` instead
        of counting it under the lock, and the batch is counted here, by
        ``_apply_pending``. Everything that
        reads the tree (usage, reports, budgets being set, resets) settles first, so
        a call is in every reading taken after it returned. ``list.append`` and the
        slice taken here are atomic: a result appended meanwhile stays for next time.
        """
        pending = self._pending
        if pending:
            n = len(pending)
            batch = pending[:n]
            del pending[:n]
            if _apply_pending is not None:
                with internal_errors_swallowed("counting LiteLLM calls"):
                    _apply_pending(self, batch)

    # -- budgets ------------------------------------------------------------------

    def _check_budgets(self, frame: Frame) -> None:
        with self._lock:
            check_budgets_locked(frame, reserve=False)

    # -- reading ------------------------------------------------------------------

    def report(self) -> Report:
        """A consistent snapshot report of this meter's whole tree."""
        return self._report(self.root)

    def _report(self, top: Scope) -> Report:
        from ._report import Report

        with internal_errors_swallowed("report"):
            return Report._snapshot(self, top)
        return Report.empty()

    def records(self) -> list[CallRecord]:
        """The kept per-call records, oldest first (empty unless ``keep_records``)."""
        with self._lock:
            return [] if self._records is None else list(self._records)

    def reset(self) -> None:
        """Zero the whole tree, its records and its time span."""
        self._reset_subtree(self.root)

    def _reset_subtree(self, top: Scope) -> None:
        with self._lock:
            self._settle_locked()  # calls made before the reset are reset with it
            for s in top.walk():
                # Zeroed in place, not dropped: a call queued with its tally before the
                # reset was counted above; one queued after it lands in the zeroed tally.
                for acc in s._dims.values():
                    acc[:] = _ZEROS
                s.entries = 0
                if s._incl is not None:
                    # A reset node is as good as new: its budget goes too (the next entry
                    # that sets limits sets it again), so a later entry without limits,
                    # e.g. in the next test, does not inherit it.
                    s.limits = None
                    s._incl = None
                    s._started = 0
            # Budget tallies of ancestors include the subtree: recompute them.
            anc = top.parent
            while anc is not None:
                if anc._incl is not None:
                    anc._incl = anc._subtree_acc_locked()
                    anc._started = anc._incl[CALLS]
                anc = anc.parent
            if top is self.root:
                if self._records is not None:
                    self._records.clear()
                self._records_seen = 0
                self._first_ts = self._last_ts = None
            elif self._records is not None:
                n = len(top.path)
                keep = [r for r in self._records if r.path[:n] != top.path]
                # Removed records are not "dropped" ones: take them out of the count too.
                self._records_seen -= len(self._records) - len(keep)
                self._records.clear()
                self._records.extend(keep)


def _one_call_acc(
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write: int,
    reasoning: int,
    cost_units: int | None,
    failed: bool,
    estimated: bool,
) -> list[int]:
    return [
        1,
        input_tokens,
        cache_read,
        cache_write,
        output_tokens,
        reasoning,
        0 if cost_units is None else cost_units,
        1 if cost_units is None else 0,
        1 if failed else 0,
        1 if estimated else 0,
    ]


#: The meter behind the module-level functions.
DEFAULT_METER = Meter()


def current_frame() -> Frame:
    """The current frame, or the default meter's root frame outside any scope."""
    cur = CURRENT.get()
    return DEFAULT_METER._root_frame if cur is None else cur


def current() -> Scope:
    """The current scope (of whatever meter), or the default meter's root when none is open."""
    cur = CURRENT.get()
    return DEFAULT_METER.root if cur is None else cur.scope


def record(
    *,
    model: str,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    provider: str | None = None,
    cost_usd: float | None = None,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    module: str | None = None,
    operation: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    failed: bool = False,
    estimated: bool = False,
    timestamp: float | None = None,
) -> CallRecord:
    """Record a call LiteLLM did not make, on the current scope, and return its record.

    ``provider`` is derived from the model when None; ``cost_usd`` is priced from
    custom prices or LiteLLM's price map when None (a model with no known price
    counts as unpriced, never as $0). Bad input raises ValueError naming the
    field and records nothing. ``module``/``operation`` default to the scope's.
    """
    frame = current_frame()
    return frame.scope.meter._record_manual(
        frame,
        model,
        input_tokens,
        output_tokens,
        provider,
        cost_usd,
        cache_read_tokens,
        cache_write_tokens,
        reasoning_tokens,
        module,
        operation,
        metadata,
        failed,
        estimated,
        timestamp,
    )


def report() -> Report:
    """A consistent snapshot report of the default meter."""
    return DEFAULT_METER.report()


def reset() -> None:
    """Zero the default meter."""
    DEFAULT_METER.reset()


__all__ = ["DEFAULT_METER", "Meter", "current", "record", "report", "reset"]
