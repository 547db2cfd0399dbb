"""The metrics: the conventions' histograms, and tokenmeter's counters summed in process.

``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration`` are SDK
histograms, recorded per call. ``tokenmeter.calls``, ``tokenmeter.cost`` and
``tokenmeter.tokens`` are cumulative sums kept here, per attribute set, and
reported by observable counters when a reader collects: a call costs a dict
lookup and a few additions instead of an SDK measurement per counter. One
`Metrics` serves each meter provider, so instrumenting again continues the sums.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.util.types import AttributeValue

from tokenmeter._forksafe import fork_safe_lock

from . import _names as N

#: Guards every provider's sums; free again in a child forked while another thread held it.
_SUMS_LOCK = fork_safe_lock()

# Columns of a sums row.
_CALLS, _COST = 0, 1
_PARTS = (  # tokenmeter.token.type values, in row order after the two above
    "input",
    "output",
    "cache_read",
    "cache_creation",
    "reasoning",
)

Attrs = dict[str, AttributeValue]

#: Record kinds whose calls always use tokens (a zero count is a real zero, e.g. a cache hit).
_TOKEN_KINDS = frozenset({"completion", "text_completion", "responses", "manual", "embedding"})


class _Set:
    """One attribute set: its attributes, the histograms' two variants, and its sums."""

    __slots__ = ("attrs", "input", "output", "sums")

    def __init__(self, attrs: Attrs) -> None:
        self.attrs = attrs
        self.input: Attrs = {**attrs, N.TOKEN_TYPE: "input"}
        self.output: Attrs = {**attrs, N.TOKEN_TYPE: "output"}
        self.sums: list[float] = [0, 0.0, 0, 0, 0, 0, 0]


class Metrics:
    """The instruments of one meter provider, and the counters' sums."""

    def __init__(self, provider: MeterProvider | None, version: str) -> None:
        meter = otel_metrics.get_meter("tokenmeter", version, provider, schema_url=N.SCHEMA_URL)
        # One lock for every provider's sums, free again in a forked child.
        self._lock = _SUMS_LOCK
        self._sets: dict[tuple[Any, ...], _Set] = {}
        self.token_usage = meter.create_histogram(
            N.TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(N.TOKEN_BUCKETS),
        )
        self.duration = meter.create_histogram(
            N.DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(N.DURATION_BUCKETS),
        )
        meter.create_observable_counter(
            N.CALLS,
            [self._observe_calls],
            unit="{call}",
            description="LLM calls recorded by tokenmeter.",
        )
        meter.create_observable_counter(
            N.COST,
            [self._observe_cost],
            unit="USD",
            description="Cost of the priced LLM calls, in US dollars.",
        )
        meter.create_observable_counter(
            N.TOKENS,
            [self._observe_tokens],
            unit="{token}",
            description="Tokens by tokenmeter.token.type: input and output, and the "
            "cache_read and cache_creation parts of input and reasoning part of output.",
        )

    def record(self, record: Any, path: str, depth: int, old_names: bool) -> None:
        """Count ``record``, a call made on scope ``path`` (as exported)."""
        error = record.metadata.get("error") if record.failed else None
        scope = _cap(path, depth)
        key = (
            record.model,
            record.provider,
            record.kind,
            record.module,
            record.operation,
            scope,
            record.cost_usd is not None,
            record.estimated,
            error,
            old_names,
        )
        s = self._sets.get(key)
        if s is None:
            s = _Set(_attributes(record, scope, error, old_names))
            with self._lock:
                s = self._sets.setdefault(key, s)
        cost = record.cost_usd
        with self._lock:
            row = s.sums
            row[_CALLS] += 1
            if cost is not None:
                row[_COST] += cost
            row[2] += record.input_tokens
            row[3] += record.output_tokens
            row[4] += record.cache_read_tokens
            row[5] += record.cache_write_tokens
            row[6] += record.reasoning_tokens
        if record.duration_s is not None:
            self.duration.record(record.duration_s, s.attrs)
        # Token usage where the operation uses tokens: not for a call that failed before
        # any, an image or audio call without counts, or an embedding's (absent) output.
        if record.total_tokens or (record.kind in _TOKEN_KINDS and not record.failed):
            self.token_usage.record(record.input_tokens, s.input)
            if record.output_tokens or record.kind != "embedding":
                self.token_usage.record(record.output_tokens, s.output)

    def _rows(self) -> list[tuple[Attrs, list[float]]]:
        with self._lock:
            return [(s.attrs, list(s.sums)) for s in self._sets.values()]

    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(int(row[_CALLS]), attrs) for attrs, row in self._rows()]

    def _observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(row[_COST], attrs)
            for attrs, row in self._rows()
            if attrs[N.PRICED]  # an unpriced call has no cost, not $0
        ]

    def _observe_tokens(self, options: CallbackOptions) -> Iterable[Observation]:
        out = []
        for attrs, row in self._rows():
            for i, part in enumerate(_PARTS, 2):
                if row[i] or part in ("input", "output"):
                    out.append(Observation(int(row[i]), {**attrs, N.TM_TOKEN_TYPE: part}))
        return out


def _attributes(record: Any, scope: str, error: Any, old_names: bool) -> Attrs:
    provider = N.provider_name(record.provider)
    attrs: Attrs = {
        N.OPERATION: N.operation_name(record.kind),
        N.PROVIDER: provider,
        N.REQUEST_MODEL: record.model,
        N.RESPONSE_MODEL: record.model,
        N.SCOPE: scope,
        N.PRICED: record.cost_usd is not None,
        N.ESTIMATED: bool(record.estimated),
    }
    if old_names:
        attrs[N.SYSTEM] = N.OLD_SYSTEMS.get(provider, provider)
    if record.module is not None:
        attrs[N.MODULE] = record.module
    if record.operation is not None:
        attrs[N.TM_OPERATION] = record.operation
    if record.failed:
        attrs[N.ERROR_TYPE] = str(error) if error else "_OTHER"
    return attrs


def _cap(path: str, depth: int) -> str:
    """``path`` cut to its first ``depth`` names (the metrics' cardinality cap)."""
    if depth <= 0 or path.count("/") < depth:
        return path
    return "/".join(path.split("/")[:depth])


_by_provider: weakref.WeakKeyDictionary[Any, Metrics] = weakref.WeakKeyDictionary()
_by_provider_lock = fork_safe_lock()


def metrics_for(provider: MeterProvider | None, version: str) -> Metrics:
    """The `Metrics` of ``provider`` (None: the global one), made once per provider."""
    if provider is None:
        provider = otel_metrics.get_meter_provider()
    with _by_provider_lock:
        m = _by_provider.get(provider)
        if m is None:
            m = _by_provider[provider] = Metrics(provider, version)
        return m
