"""The meter: one call tree, its lock, its records, and the API acting on it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MethodType
from typing import TYPE_CHECKING, Any

from . import _scope
from ._acc import COST_SCALE, cost_to_units
from ._check import check_label
from ._frame import Frame
from ._handle import Scope
from ._scope import use_default_tree
from ._track import make_track
from ._tree import (
    DEFAULT_MAX_RECORDS,
    Tree,
    add,
    frame_under,
    reset_subtree,
    root_frame,
)

# Bound by assignment, not by ``from ... import``: CPython 3.11 compiles ``NAME.get()``
# on an imported name as an attribute load that builds a bound method on every call
# (about 40 ns each, three times per scope); on an assigned name it is a method call.
CURRENT = _scope.CURRENT

if TYPE_CHECKING:
    from ._pricing import price_tokens, provider_for
    from ._record import (
        CallRecord,
        check_flag,
        check_metadata,
        check_timestamp,
        frozen_mapping,
        new_record,
        plain_counts,
        validate_counts,
    )
    from ._report import Report

#: Whether `_load_record_support` has run.
_record_support = False
_time = time.time
#: A record's empty ``attributes``/``metadata`` (bound with the record support).
_NO_MAPPING: Mapping[str, Any] = {}
#: ``_pricing``'s cache of providers by model, its ``get`` (bound with the record support:
#: a method of a name bound by an import would build a bound method on every call).
_NO_PROVIDERS: dict[str, str] = {}
_cached_provider = _NO_PROVIDERS.get


def _load_record_support() -> None:
    """Load what ``record()`` needs beyond the core: ``_record`` and ``_pricing``.

    They import attrs, which ``import tokenmeter`` does not: the first ``record()``
    loads them and binds these module globals, so later calls pay nothing (an
    import statement per call would cost microseconds).
    """
    global CallRecord, check_timestamp, validate_counts, price_tokens, provider_for
    global check_flag, check_metadata, frozen_mapping, new_record, plain_counts, _NO_MAPPING
    global _cached_provider
    global _record_support
    from . import _pricing
    from ._pricing import price_tokens, provider_for
    from ._record import (
        CallRecord,
        check_flag,
        check_metadata,
        check_timestamp,
        frozen_mapping,
        new_record,
        plain_counts,
        validate_counts,
    )

    _NO_MAPPING = frozen_mapping(None)
    _cached_provider = _pricing.cached_provider
    _record_support = True


class Meter(Tree):
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

    root: Scope

    def __init__(
        self, *, keep_records: bool = False, max_records: int = DEFAULT_MAX_RECORDS
    ) -> None:
        super().__init__(Scope, keep_records=keep_records, max_records=max_records)

    def __repr__(self) -> str:
        return f"<tokenmeter.Meter scopes={sum(1 for _ in self.root.walk()) - 1}>"

    # -- scopes -------------------------------------------------------------------

    #: A scope of this meter, for ``with`` / ``async with`` (see `tokenmeter.track`).
    track = make_track

    def current(self) -> Scope:
        """The innermost open scope of this meter in the current context, else its root."""
        cur = CURRENT.get()
        if cur is None:
            return self.root
        scope: Scope = cur.scope if cur.scope.meter is self else frame_under(self, cur).scope
        return scope

    def _current_frame(self) -> Frame:
        cur = CURRENT.get()
        if cur is None or cur.scope.meter is not self:
            return frame_under(self, cur)
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
        """Record a call LiteLLM did not make, on the current scope, and return its record.

        ``provider`` is derived from the model when None; ``cost_usd`` is priced from
        custom prices or LiteLLM's price map when None (a model with no known price
        counts as unpriced, never as $0). Bad input raises ValueError naming the
        field and records nothing. ``module``/``operation`` default to the scope's.
        ``tokenmeter.record`` records on the current scope, whichever meter it is
        of; ``meter.record`` on this meter's current scope (its root outside them).
        """
        frame = CURRENT.get()
        if self is not _CURRENT_METER:
            if frame is None or frame.scope.meter is not self:
                frame = frame_under(self, frame)
        elif frame is None:
            frame = DEFAULT_ROOT_FRAME
        if (
            cost_usd is not None  # a float: plain_counts checks it
            and provider is None
            and module is None
            and operation is None
            and metadata is None
            and timestamp is None
            and failed is False
            and estimated is False
            and _record_support
            and plain_counts(
                model,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                reasoning_tokens,
                cost_usd,
            )
        ):
            # The commonest call (valid counts and a cost, nothing else): the checks
            # are `_record.plain_counts`, the provider `_pricing.provider_for`'s own
            # cache first (a model with a "/" is never in it); kept as a compact row.
            provider = _cached_provider(model) or provider_for(model, import_litellm=True)
            mod = frame.module
            op = frame.operation
            ts = _time()
            attributes = frame.attributes
            rec = new_record(
                model, provider, input_tokens, output_tokens, cache_read_tokens,
                cache_write_tokens, reasoning_tokens, cost_usd, mod, op, frame.scope.path,
                "manual", False, False, ts, None, None,
                frozen_mapping(attributes) if attributes else _NO_MAPPING, _NO_MAPPING,
            )  # fmt: skip
            add(
                frame.scope.meter,
                frame,
                (model, provider, mod, op),
                input_tokens,  # type: ignore[arg-type]  # ints: plain_counts checked them
                output_tokens,  # type: ignore[arg-type]
                cache_read_tokens,
                cache_write_tokens,
                reasoning_tokens,
                round(cost_usd * COST_SCALE),  # cost_to_units, without a call
                False,
                False,
                ts,
                rec,
                False,
                None,
                True,
            )
            return rec
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
        ts = _time() if timestamp is None else check_timestamp(timestamp)
        if provider is None:
            # LiteLLM names the provider whether or not it was imported yet: the
            # provider of a record never depends on import order.
            provider = provider_for(m, import_litellm=True)
        if cost is None:
            cost = price_tokens(m, provider, i, o, cr, cw, r)
        rec = new_record(
            m, provider, i, o, cr, cw, r, cost, module, operation, frame.scope.path, "manual",
            failed, estimated, ts, None, None, frozen_mapping(frame.attributes),
            frozen_mapping(metadata),
        )  # fmt: skip
        add(
            frame.scope.meter,
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

    # -- reading ------------------------------------------------------------------

    def report(self) -> Report:
        """A consistent snapshot report of this meter's whole tree."""
        return self.root.report()

    def reset(self) -> None:
        """Zero the whole tree, its records and its time span."""
        reset_subtree(self, self.root)


#: The meter behind the module-level functions.
DEFAULT_METER = Meter()
use_default_tree(DEFAULT_METER)
#: Its root frame: where usage lands outside any scope.
DEFAULT_ROOT_FRAME = root_frame(DEFAULT_METER)


def current() -> Scope:
    """The current scope (of whatever meter), or the default meter's root when none is open."""
    cur = CURRENT.get()
    return DEFAULT_METER.root if cur is None else cur.scope


class _CurrentMeter:
    """``self`` of `record`: the meter of the current scope, whichever it is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<the current scope's meter>"


_CURRENT_METER: Any = _CurrentMeter()

# One signature for both: `Meter.record`, bound to "the current scope's meter".
if TYPE_CHECKING:
    record = DEFAULT_METER.record
else:
    record = MethodType(Meter.record, _CURRENT_METER)


def report() -> Report:
    """A consistent snapshot report of the current scope's meter.

    That is the default meter, unless a scope of another meter is current: inside
    ``meter.track(...)``, ``tokenmeter.testing.isolated_meter()`` or a test the
    pytest plugin measures, it is that meter (where ``tm.record`` and LiteLLM
    calls land), so the obvious call shows them.
    """
    cur = CURRENT.get()
    return (DEFAULT_METER if cur is None else cur.scope.meter).report()


def reset() -> None:
    """Zero the default meter."""
    DEFAULT_METER.reset()


__all__ = ["DEFAULT_METER", "Meter", "current", "record", "report", "reset"]
