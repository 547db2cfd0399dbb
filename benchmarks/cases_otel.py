"""Attribution with OpenTelemetry export on and off (``tokenmeter.otel``).

The call rows time tokenmeter's real wrapper around a stand-in ``completion`` that
returns a real ``ModelResponse`` at once (see ``cases_litellm``), inside a scope:
export off, metrics only, and spans and metrics. The scope rows time entering and
leaving a scope, with and without its INTERNAL span. The OTel SDK's providers are
real; the span exporter drops what it is given and the metric reader is only
collected in the setup, so the rows are tokenmeter's and the SDK's in-process
work, not an exporter's I/O. Each runner registers its observer for the duration
of its own loop only, so the rows of other tables never see it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

from harness import Case, Runner, Unavailable

TITLE = "OpenTelemetry export (tokenmeter.otel)"
ORDER = 45

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello."}]


def _observer(spans: bool, metrics: bool) -> tuple[Any, Callable[[], int], Callable[[], int]]:
    """A tokenmeter.otel observer on fresh SDK providers, not registered; span/point counters."""
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        import tokenmeter.otel
    except ImportError as e:
        raise Unavailable(f"tokenmeter.otel or the OTel SDK is missing: {e}") from e

    exported = [0]

    class Drop(SpanExporter):
        def export(self, batch: Sequence[ReadableSpan]) -> SpanExportResult:
            exported[0] += len(batch)
            return SpanExportResult.SUCCESS

    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(Drop()))
    reader = InMemoryMetricReader()
    tokenmeter.otel.instrument(tp, MeterProvider([reader]), spans=spans, metrics=metrics)
    observer = tokenmeter.otel._observer[0]
    tokenmeter.otel.uninstrument()

    def points() -> int:
        data = reader.get_metrics_data()
        if data is None:
            return 0
        return sum(
            len(m.data.data_points)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )

    return observer, (lambda: exported[0]), points


def calls(spans: bool, metrics: bool) -> Callable[[], Runner]:
    def setup() -> Runner:
        from cases_litellm import _fake_sync, _wrapped

        import tokenmeter as tm
        from tokenmeter import _events

        wrapped = _wrapped("completion", _fake_sync())
        observer = None
        n_spans = n_points = None
        if spans or metrics:
            observer, n_spans, n_points = _observer(spans, metrics)

        def run(loops: int) -> None:
            if observer is not None:
                _events.add_observer(observer)
            try:
                with tm.track("call") as scope:
                    for _ in repeat(None, loops):
                        wrapped(model=MODEL, messages=MESSAGES)
                    scope.usage  # noqa: B018  (counts what waits in the queue, in the time)
            finally:
                if observer is not None:
                    _events.remove_observer(observer)

        tm.reset()
        run(3)
        counted = tm.report().node("call").usage.calls
        if counted != 3:
            raise AssertionError(f"3 wrapped calls counted {counted}")
        if n_spans is not None and n_points is not None:
            if spans and n_spans() != 4:  # 3 call spans and the scope's
                raise AssertionError(f"3 calls in a scope made {n_spans()} spans")
            if metrics and n_points() == 0:
                raise AssertionError("3 calls recorded no metric point")
        return run

    return setup


def scopes(spans: bool, metrics: bool) -> Callable[[], Runner]:
    def setup() -> Runner:
        import tokenmeter as tm
        from tokenmeter import _events

        observer = n_spans = None
        if spans or metrics:
            observer, n_spans, _ = _observer(spans, metrics)
        track = tm.track

        def run(loops: int) -> None:
            if observer is not None:
                _events.add_observer(observer)
            try:
                for _ in repeat(None, loops):
                    with track("scope"):
                        pass
            finally:
                if observer is not None:
                    _events.remove_observer(observer)

        run(3)
        if spans and n_spans is not None and n_spans() != 3:
            raise AssertionError(f"3 scope entries made {n_spans()} spans")
        return run

    return setup


CASES = [
    Case(
        "otel_call_off",
        "wrapped trivial `completion()` in a scope, OTel export off",
        calls(False, False),
    ),
    Case("otel_call_metrics", "the same, `tokenmeter.otel` metrics on", calls(False, True)),
    Case("otel_call_spans_metrics", "the same, spans and metrics on", calls(True, True)),
    Case("otel_scope_off", "enter and leave a scope, OTel export off", scopes(False, False)),
    Case(
        "otel_scope_metrics",
        "the same, metrics on (no span; the path in baggage)",
        scopes(False, True),
    ),
    Case("otel_scope_spans", "the same, spans and metrics on", scopes(True, True)),
]
