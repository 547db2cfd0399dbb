"""Two services, one tree: the scope path travels in W3C baggage between them.

The "gateway" runs an agent whose research step calls the "writer" service over HTTP.
Both export to OpenTelemetry with tokenmeter.otel. The gateway's OTel propagators
(the default ones: tracecontext and baggage) put the trace and ``tokenmeter.scope``
in the request's headers; the writer extracts them, and the spans and metrics it
exports nest under ``agent/research``, in the gateway's trace.

Both services run on 127.0.0.1 (the writer in a child process). Each keeps its own
in-memory exporters here; a real deployment points both at a Collector.

    python examples/otel_two_services.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import litellm
from opentelemetry import context, propagate
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tokenmeter as tm
import tokenmeter.otel

MESSAGES = [{"role": "user", "content": "Summarise the findings."}]


def setup_otel(service: str) -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    """This service's providers, with in-memory exporters, and tokenmeter.otel on them."""
    resource = Resource.create({"service.name": service})
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    tokenmeter.otel.instrument(tracer_provider, MeterProvider([reader], resource=resource))
    return spans, reader


def exported(spans: InMemorySpanExporter, reader: InMemoryMetricReader) -> dict[str, Any]:
    """What this service exported: spans (name, kind, scope, trace) and calls per scope."""
    calls: dict[str, int] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "tokenmeter.calls":
                    for dp in metric.data.data_points:
                        scope = str(dp.attributes["tokenmeter.scope"])
                        calls[scope] = calls.get(scope, 0) + int(dp.value)
    return {
        "spans": [
            {
                "name": s.name,
                "kind": s.kind.name,
                "scope": s.attributes.get("tokenmeter.scope"),
                "trace": f"{s.context.trace_id:032x}",
                "id": f"{s.context.span_id:016x}",
                "parent": f"{s.parent.span_id:016x}" if s.parent else None,
            }
            for s in spans.get_finished_spans()
        ],
        "calls": calls,
    }


# -- the writer service (a child process) ------------------------------------------------


def serve_writer() -> None:
    spans, reader = setup_otel("writer")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            # What an OTel server instrumentation (FastAPI, Flask, ...) does for you:
            token = context.attach(propagate.extract(self.headers))
            try:
                with tm.track("write"):
                    for _ in range(2):
                        litellm.completion(
                            model="gpt-4o-mini", messages=MESSAGES, mock_response="Done."
                        )
            finally:
                context.detach(token)
            self.reply({"written": True})

        def do_GET(self) -> None:
            node = tm.report().node("write")
            self.reply({**exported(spans, reader), "report": [list(node.path), node.usage.calls]})

        def reply(self, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_port, flush=True)
    server.serve_forever()


# -- the gateway service -----------------------------------------------------------------


def post(url: str) -> Any:
    headers = {"Content-Type": "application/json"}
    propagate.inject(headers)  # what an OTel client instrumentation (requests, httpx) does
    request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)


def main() -> None:
    spans, reader = setup_otel("gateway")
    writer = subprocess.Popen(
        [sys.executable, __file__, "--writer"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        url = f"http://127.0.0.1:{writer.stdout.readline().strip()}"
        with tm.track("agent"):
            litellm.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="Plan.")
            with tm.track("research"):
                headers_sent: dict[str, str] = {}
                propagate.inject(headers_sent)
                post(url)
        with urllib.request.urlopen(url, timeout=30) as resp:
            theirs = json.load(resp)
    finally:
        writer.terminate()
        writer.wait()
    ours = exported(spans, reader)
    print(f"baggage sent: {headers_sent['baggage']}")
    for name, data in (("gateway", ours), ("writer", theirs)):
        print(f"{name} exported:")
        for s in data["spans"]:
            print(f"  {s['kind']:<8} {s['name']:<18} tokenmeter.scope={s['scope']}")
        for scope, n in sorted(data["calls"].items()):
            print(f"  tokenmeter.calls{{tokenmeter.scope={scope!r}}} = {n}")
    path, calls = theirs["report"]
    print(f"writer's own report: {'/'.join(path)}: {calls} calls")
    same = {s["trace"] for s in ours["spans"]} == {s["trace"] for s in theirs["spans"]}
    print(f"one trace across both services: {same}")
    research = next(s for s in ours["spans"] if s["name"] == "research")
    write = next(s for s in theirs["spans"] if s["name"] == "write")
    child = write["parent"] == research["id"]
    print(f"writer's 'write' span is a child of the gateway's 'research': {child}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--writer"]:
        serve_writer()
    else:
        main()
