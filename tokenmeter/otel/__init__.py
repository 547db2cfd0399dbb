"""OpenTelemetry export: tokenmeter's calls and scopes as GenAI spans and metrics.

    import tokenmeter.otel
    tokenmeter.otel.instrument()          # the global tracer and meter providers

Every call tokenmeter counts becomes one CLIENT span (``{operation} {model}``,
``gen_ai.usage.*``, ``gen_ai.usage.cost``, ``tokenmeter.scope``) parented to the
OpenTelemetry span current when the call was made, and a point on the
``gen_ai.client.token.usage``, ``gen_ai.client.operation.duration``,
``tokenmeter.cost``, ``tokenmeter.calls`` and ``tokenmeter.tokens`` metrics.
Every scope entry becomes one INTERNAL span carrying its inclusive totals under
``tokenmeter.usage.*``, current in the OpenTelemetry context while the scope is,
with the scope path in W3C baggage (``tokenmeter.scope``) for other services.

Names follow the OpenTelemetry GenAI semantic conventions v1.41.0
(`SEMCONV_VERSION`). No prompt or completion ever reaches a span, a metric or
baggage; scope attributes and record metadata do only with
``include_metadata=True``. Requires the ``otel`` extra
(``pip install 'tokenmeter[otel]'``); ``import tokenmeter`` never imports this.
"""

from __future__ import annotations

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from tokenmeter import _events
from tokenmeter._forksafe import fork_safe_lock
from tokenmeter._version import __version__

from ._names import SEMCONV_VERSION
from ._observer import OTelObserver

__all__ = [
    "DEFAULT_METRIC_SCOPE_DEPTH",
    "SEMCONV_VERSION",
    "instrument",
    "instrumented",
    "uninstrument",
]

#: How many names of a scope path the metrics' ``tokenmeter.scope`` keeps by default.
DEFAULT_METRIC_SCOPE_DEPTH = 3

_lock = fork_safe_lock()
_observer: list[OTelObserver] = []


def instrument(
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    *,
    spans: bool = True,
    metrics: bool = True,
    baggage: bool = True,
    metric_scope_depth: int = DEFAULT_METRIC_SCOPE_DEPTH,
    include_metadata: bool = False,
) -> None:
    """Export tokenmeter's calls and scope entries to OpenTelemetry from now on.

    ``tracer_provider``/``meter_provider`` None mean the global ones (as set with
    ``opentelemetry.trace.set_tracer_provider``...). ``spans``/``metrics`` turn
    either signal off. ``baggage`` puts the scope path in W3C baggage while a
    scope is open and nests scopes under a path received in baggage.
    ``metric_scope_depth`` caps the metrics' ``tokenmeter.scope`` at that many
    names (deeper scopes count under their ancestor; 0 keeps whole paths); spans
    always carry the whole path. ``include_metadata`` adds scope attributes and
    record metadata to spans (never to metrics or baggage).

    Calling it again replaces the previous setup. Raises ValueError, changing
    nothing, for a bad ``metric_scope_depth``.
    """
    if type(metric_scope_depth) is not int or metric_scope_depth < 0:
        raise ValueError(
            f"metric_scope_depth must be a non-negative integer, got {metric_scope_depth!r}"
        )
    for name, flag in (
        ("spans", spans),
        ("metrics", metrics),
        ("baggage", baggage),
        ("include_metadata", include_metadata),
    ):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    observer = OTelObserver(
        tracer_provider,
        meter_provider,
        spans=spans,
        metrics=metrics,
        baggage=baggage,
        metric_scope_depth=metric_scope_depth,
        include_metadata=include_metadata,
        version=__version__,
    )
    with _lock:
        _stop_locked()
        _observer.append(observer)
        _events.add_observer(observer)


def uninstrument() -> None:
    """Stop exporting (scope spans still open are ended now); no error if not instrumented."""
    with _lock:
        _stop_locked()


def instrumented() -> bool:
    """Whether `instrument` is in effect."""
    return bool(_observer)


def _stop_locked() -> None:
    while _observer:
        old = _observer.pop()
        _events.remove_observer(old)
        old.close()
