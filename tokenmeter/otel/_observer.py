"""The observer that turns tokenmeter's calls and scope entries into OpenTelemetry signals.

It is registered on `tokenmeter._events`: ``on_enter``/``on_exit`` bracket one
scope entry (an INTERNAL span, made current in the OTel context with the scope
path in baggage), ``on_call`` gets each counted call once (a CLIENT span with
the call's own start and end, and the metrics). Everything here runs in the
thread and context of the call or scope; streams are recorded in a copy of the
context their call was made in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from tokenmeter._forksafe import fork_safe_lock

from . import _names as N
from ._metrics import metrics_for

logger = logging.getLogger("tokenmeter")

#: Guards the scope entries' running totals. A lock another thread holds at a fork stays
#: held in the child: this one is made free again there (`fork_safe_lock`).
_ENTRIES_LOCK = fork_safe_lock()

_COST_SCALE = 10_000_000_000  # dollars -> whole 1e-10 units, as tokenmeter adds costs

# The fields of a scope entry's inclusive totals, in ``_Entry.acc`` order.
_TOTALS = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_calls",
    "failed_calls",
    "estimated_calls",
)


class _Entry:
    """One scope entry while it is open: its span, OTel context and running totals."""

    __slots__ = ("acc", "ctx", "path", "prefix", "span", "token")

    def __init__(
        self,
        prefix: tuple[str, ...],
        path: str,
        span: Span | None,
        ctx: context.Context,
        token: object,
    ) -> None:
        self.prefix = prefix
        self.path = path
        self.span = span
        self.ctx = ctx
        self.token = token
        self.acc = [0] * len(_TOTALS)


def _inbound_prefix(ctx: context.Context | None = None) -> tuple[str, ...]:
    """The scope path another service sent in baggage, as a tuple (empty when none)."""
    value = baggage.get_baggage(N.BAGGAGE_KEY, ctx)
    if not isinstance(value, str) or not value:
        return ()
    return tuple(p for p in value.split("/") if p)


def _path_under_baggage(path: tuple[str, ...]) -> str:
    """The exported path of a call on ``path`` whose scope entry is not open here.

    The baggage is either another service's path (calls at the root, or in a scope
    entered before `instrument`) or the path this observer put there when the
    call's scope was entered (a stream recorded after its scope was left, in its
    call's context): then it already ends with ``path``.
    """
    received = _inbound_prefix()
    n = len(path)
    if n and received[-n:] == path:
        return "/".join(received)
    return "/".join((*received, *path))


class OTelObserver:
    """Spans and metrics for every scope entry and counted call (see `tokenmeter.otel`)."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
        *,
        spans: bool,
        metrics: bool,
        baggage: bool,
        metric_scope_depth: int,
        include_metadata: bool,
        version: str,
    ) -> None:
        self.spans = spans
        self.baggage = baggage
        self.depth = metric_scope_depth
        self.include_metadata = include_metadata
        self.old_names = not N.latest_only()
        self._entries: dict[Any, _Entry] = {}
        # One lock for every observer, free again in a forked child (`fork_safe_lock`).
        self._lock = _ENTRIES_LOCK
        self.tracer = (
            trace.get_tracer("tokenmeter", version, tracer_provider, schema_url=N.SCHEMA_URL)
            if spans
            else None
        )
        self.metrics = metrics_for(meter_provider, version) if metrics else None

    # -- scope entries ---------------------------------------------------------------------

    def on_enter(self, frame: Any) -> None:
        parent = self._entries.get(frame.prev) if frame.prev is not None else None
        ctx = context.get_current()
        if parent is not None:
            prefix = parent.prefix
            if not _same_trace(ctx, parent):
                ctx = parent.ctx  # another thread, or a context that lost the scope's span
        else:
            prefix = _inbound_prefix(ctx) if self.baggage else ()
        path = "/".join((*prefix, *frame.scope.path))
        span = None
        if self.tracer is not None:
            attrs: dict[str, AttributeValue] = {N.SCOPE: path}
            if frame.module is not None:
                attrs[N.MODULE] = frame.module
            if frame.operation is not None:
                attrs[N.TM_OPERATION] = frame.operation
            if self.include_metadata:
                attrs.update(_prefixed("tokenmeter.attribute.", frame.attributes))
            span = self.tracer.start_span(
                frame.scope.name, context=ctx, kind=SpanKind.INTERNAL, attributes=attrs
            )
            ctx = trace.set_span_in_context(span, ctx)
        if self.baggage:
            ctx = baggage.set_baggage(N.BAGGAGE_KEY, path, ctx)
        token = context.attach(ctx)
        self._entries[frame] = _Entry(prefix, path, span, ctx, token)

    def on_exit(self, frame: Any) -> None:
        entry = self._entries.pop(frame, None)
        if entry is None:
            return
        try:
            if entry.span is not None:
                with self._lock:
                    totals = list(entry.acc)
                entry.span.set_attributes(_totals_attributes(totals))
                entry.span.end()
        finally:
            # Detach only in the context that attached it (a generator's scope may be
            # left from another Context, whose OTel context is not ours to reset).
            if context.get_current() is entry.ctx:
                context.detach(entry.token)  # type: ignore[arg-type]

    def close(self) -> None:
        """End the spans of the entries still open (on `uninstrument`).

        Their OTel contexts are detached where this runs, innermost first; a context
        attached in another thread or task stays there until that context ends.
        """
        for frame in reversed(list(self._entries)):  # innermost first
            entry = self._entries.pop(frame, None)
            if entry is None:
                continue
            if entry.span is not None:
                entry.span.end()
            if context.get_current() is entry.ctx:
                context.detach(entry.token)  # type: ignore[arg-type]

    # -- calls -----------------------------------------------------------------------------

    def on_call(self, record: Any, frame: Any) -> None:
        entry = self._entries.get(frame)
        if entry is not None:
            path = entry.path
        elif self.baggage:
            path = _path_under_baggage(record.path)
        else:
            path = "/".join(record.path)
        if self.tracer is not None and self._entries:
            self._add_to_entries(record, frame)
        if self.metrics is not None:
            self.metrics.record(record, path, self.depth, self.old_names)
        if self.tracer is not None:
            self._call_span(record, path, entry)

    def _add_to_entries(self, record: Any, frame: Any) -> None:
        meter = frame.scope.meter
        entries = self._entries
        f = frame
        found = []
        while f is not None:
            e = entries.get(f)
            if e is not None and f.scope.meter is meter:
                found.append(e)
            f = f.prev
        if not found:
            return
        cost = record.cost_usd
        row = (
            1,
            record.input_tokens,
            record.output_tokens,
            record.cache_read_tokens,
            record.cache_write_tokens,
            record.reasoning_tokens,
            0 if cost is None else round(cost * _COST_SCALE),
            1 if cost is None else 0,
            1 if record.failed else 0,
            1 if record.estimated else 0,
        )
        with self._lock:
            for e in found:
                acc = e.acc
                for i, v in enumerate(row):
                    acc[i] += v

    def _call_span(self, record: Any, path: str, entry: _Entry | None) -> None:
        assert self.tracer is not None
        ctx = context.get_current()
        if entry is not None and not _same_trace(ctx, entry):
            ctx = entry.ctx  # made in a thread or task that does not carry the OTel context
        end = record.timestamp
        start = end - record.duration_s if record.duration_s is not None else end
        operation = N.operation_name(record.kind)
        provider = N.provider_name(record.provider)
        attrs: dict[str, AttributeValue] = {
            N.OPERATION: operation,
            N.PROVIDER: provider,
            N.REQUEST_MODEL: record.model,
            N.RESPONSE_MODEL: record.model,
            N.USAGE_INPUT: record.input_tokens,
            N.USAGE_OUTPUT: record.output_tokens,
            N.USAGE_CACHE_READ: record.cache_read_tokens,
            N.USAGE_CACHE_CREATION: record.cache_write_tokens,
            N.USAGE_REASONING: record.reasoning_tokens,
            N.SCOPE: path,
            N.PRICED: record.cost_usd is not None,
            N.ESTIMATED: bool(record.estimated),
            N.KIND: record.kind,
        }
        if self.old_names:
            attrs[N.SYSTEM] = N.OLD_SYSTEMS.get(provider, provider)
        if record.cost_usd is not None:
            attrs[N.USAGE_COST] = record.cost_usd
        if record.module is not None:
            attrs[N.MODULE] = record.module
        if record.operation is not None:
            attrs[N.TM_OPERATION] = record.operation
        if self.include_metadata:
            attrs.update(_prefixed("tokenmeter.attribute.", record.attributes))
            attrs.update(_prefixed("tokenmeter.metadata.", record.metadata))
        if record.failed:
            error = record.metadata.get("error")
            attrs[N.ERROR_TYPE] = str(error) if error else "_OTHER"
        span = self.tracer.start_span(
            f"{operation} {record.model}",
            context=ctx,
            kind=SpanKind.CLIENT,
            attributes=attrs,
            start_time=int(start * 1e9),
        )
        if record.failed:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=int(end * 1e9))


def _same_trace(ctx: context.Context, entry: _Entry) -> bool:
    """Whether ``ctx``'s current span belongs to the trace of ``entry``'s scope span."""
    if entry.span is None:
        return True  # spans are off: the context is only for baggage, keep the caller's
    current = trace.get_current_span(ctx).get_span_context()
    return current.is_valid and current.trace_id == entry.span.get_span_context().trace_id


def _prefixed(prefix: str, values: Mapping[str, Any]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for k, v in values.items():
        if isinstance(v, (str, bool, int, float)):
            out[prefix + str(k)] = v
        else:
            out[prefix + str(k)] = str(v)
    return out


def _totals_attributes(acc: list[int]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for name, value in zip(_TOTALS, acc, strict=True):
        out[f"tokenmeter.usage.{name}"] = value / _COST_SCALE if name == "cost_usd" else value
    return out
