"""End to end through real exporters: a Prometheus scrape and an OTLP/HTTP receiver."""

from __future__ import annotations

import gzip
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import tokenmeter.otel
from tests.otel_support import (
    assert_points_match,
    points_from_otlp,
    points_from_prometheus,
    scenario,
)


class OTLPReceiver:
    """An OTLP/HTTP receiver on 127.0.0.1 that decodes what it is sent (protobuf)."""

    def __init__(self) -> None:
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.traces: list[ExportTraceServiceRequest] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                assert self.headers["Content-Type"] == "application/x-protobuf"
                if self.path == "/v1/metrics":
                    receiver.metrics.append(ExportMetricsServiceRequest.FromString(body))
                elif self.path == "/v1/traces":
                    receiver.traces.append(ExportTraceServiceRequest.FromString(body))
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    r = OTLPReceiver()
    yield r
    r.close()


async def test_otlp_http_receiver_totals_equal_the_report(receiver: OTLPReceiver) -> None:
    """Metrics and spans sent over OTLP/HTTP (protobuf) decode to the report's numbers."""
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=receiver.url + "/v1/metrics"), export_interval_millis=3_600_000
    )
    mp = MeterProvider(metric_readers=[reader])
    tp = TracerProvider()
    tp.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.url + "/v1/traces"))
    )
    tokenmeter.otel.instrument(tp, mp, metric_scope_depth=0)
    try:
        rep = await scenario(tp.get_tracer("user"))
    finally:
        tokenmeter.otel.uninstrument()
    assert mp.force_flush()
    assert tp.force_flush()
    assert len(receiver.metrics) == 1
    assert assert_points_match(points_from_otlp(receiver.metrics[0]), rep) == 20
    spans = [
        s
        for req in receiver.traces
        for rs in req.resource_spans
        for ss in rs.scope_spans
        if ss.scope.name == "tokenmeter"
        for s in ss.spans
    ]
    calls = [s for s in spans if s.kind == s.SPAN_KIND_CLIENT]
    usage_keys = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
    tokens = sum(a.value.int_value for s in calls for a in s.attributes if a.key in usage_keys)
    assert len(calls) == rep.total.calls
    assert tokens == rep.total.total_tokens
    mp.shutdown()
    tp.shutdown()


async def test_prometheus_scrape_totals_equal_the_report() -> None:
    """The Prometheus exporter scraped over HTTP, parsed by prometheus_client: the report."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import REGISTRY, start_http_server

    reader = PrometheusMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=REGISTRY)
    try:
        tokenmeter.otel.instrument(meter_provider=mp, spans=False, metric_scope_depth=0)
        try:
            rep = await scenario(TracerProvider().get_tracer("user"))
        finally:
            tokenmeter.otel.uninstrument()
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        mp.shutdown()
    assert "gen_ai_client_token_usage_bucket" in text
    assert assert_points_match(points_from_prometheus(text), rep) == 20
