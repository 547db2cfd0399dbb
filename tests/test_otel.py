"""OpenTelemetry export: metrics equal the report, spans nest where the calls were made."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from opentelemetry import context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tokenmeter as tm
import tokenmeter.otel
from tests.otel_support import ask, assert_points_match, exact, points_from_sdk, scenario, usage_of

MSGS = [{"role": "user", "content": "hi"}]


class Otel:
    def __init__(self, **kw: Any) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        tokenmeter.otel.instrument(self.tracer_provider, self.meter_provider, **kw)

    def points(self) -> Any:
        return points_from_sdk(self.reader.get_metrics_data())

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())


@pytest.fixture
def otel() -> Iterator[Otel]:
    o = Otel(metric_scope_depth=0)
    yield o
    tokenmeter.otel.uninstrument()


async def test_metrics_equal_the_report_per_model_and_scope(otel: Otel) -> None:
    """Metric sums per model, per scope (own and inclusive) and in total equal tm.report()."""
    rep = await scenario(otel.tracer_provider.get_tracer("user"))
    assert (rep.total.calls, rep.total.failed_calls, rep.total.unpriced_calls) == (12, 1, 1)
    wire = rep.node("main", "wire").usage
    assert (wire.cache_read_tokens, wire.reasoning_tokens) == (2000, 240)
    assert rep.total.estimated_calls == 1  # the mock stream has no usage chunk
    points = otel.points()
    assert assert_points_match(points, rep) == 4 + 2 * 8
    by_model = {m: u.calls for m, u in rep.by_model().items()}
    assert by_model == {"gpt-4o-mini": 7, "gpt-4o": 3, "no-such-model-1": 1, "o4-mini": 1}


async def test_span_tree_nests_calls_under_their_scopes(otel: Otel) -> None:
    """Scope spans and call spans sit in the right parents, in one trace, each call once."""
    tracer = otel.tracer_provider.get_tracer("user")
    with tracer.start_as_current_span("request") as request:
        rep = await scenario(tracer)
    spans = otel.finished()
    by_id = {s.context.span_id: s for s in spans}
    assert {s.context.trace_id for s in spans} == {request.get_span_context().trace_id}

    def parent(s: ReadableSpan) -> ReadableSpan:
        assert s.parent is not None
        return by_id[s.parent.span_id]

    calls = [s for s in spans if s.kind == SpanKind.CLIENT]
    scopes = [
        s for s in spans if s.kind == SpanKind.INTERNAL and s.name not in ("user-span", "request")
    ]
    assert len(calls) == rep.total.calls == 12
    assert Counter(s.name for s in scopes) == {
        "main": 1, "worker": 3, "task": 2, "stream": 1, "fail": 1, "fallback": 1, "unpriced": 1,
        "wire": 1,
    }  # fmt: skip
    main = next(s for s in scopes if s.name == "main")
    assert parent(main).name == "request"
    for s in scopes:
        if s is not main:
            assert parent(s) is main, s.name
    for c in calls:
        scope = c.attributes["tokenmeter.scope"]
        expected = "user-span" if scope == "main/stream" else scope.rsplit("/", 1)[-1]
        assert parent(c).name == expected, scope
        assert c.name == f"chat {c.attributes['gen_ai.response.model']}"
        assert c.end_time >= c.start_time
    # The fallback is one span, with the model that answered; the failure is an error.
    (fb,) = [c for c in calls if c.attributes["tokenmeter.scope"] == "main/fallback"]
    assert (fb.name, fb.attributes["gen_ai.usage.output_tokens"]) == (
        "chat gpt-4o-mini",
        rep.node("main", "fallback").usage.output_tokens,
    )
    (failed,) = [c for c in calls if c.status.status_code == StatusCode.ERROR]
    assert failed.attributes["error.type"] == "InternalServerError"
    assert failed.attributes["tokenmeter.operation"] == "risky"
    (unpriced,) = [c for c in calls if c.attributes["tokenmeter.priced"] is False]
    assert "gen_ai.usage.cost" not in unpriced.attributes
    # The span of a stream starts with its call and ends when it was recorded.
    (st,) = [c for c in calls if c.attributes["tokenmeter.scope"] == "main/stream"]
    assert st.attributes["tokenmeter.estimated"] is True
    assert st.end_time >= parent(st).end_time  # user-span ended before the stream did
    # Scope spans carry their entry's inclusive totals, never gen_ai.usage.*.
    assert not any(k.startswith("gen_ai.") for s in scopes for k in s.attributes)
    assert main.attributes["tokenmeter.usage.calls"] == rep.node("main").usage.calls
    u = rep.node("main").usage
    assert (
        main.attributes["tokenmeter.usage.input_tokens"],
        main.attributes["tokenmeter.usage.output_tokens"],
        main.attributes["tokenmeter.usage.unpriced_calls"],
        main.attributes["tokenmeter.usage.failed_calls"],
        main.attributes["tokenmeter.usage.estimated_calls"],
        round(main.attributes["tokenmeter.usage.cost_usd"], 10),
    ) == (u.input_tokens, u.output_tokens, 1, 1, 1, round(u.cost_usd, 10))
    workers = [s for s in scopes if s.name == "worker"]
    assert sum(s.attributes["tokenmeter.usage.calls"] for s in workers) == 3
    assert sum(s.attributes["tokenmeter.usage.output_tokens"] for s in workers) == (
        rep.node("main", "worker").usage.output_tokens
    )
    # The call spans' usage adds up to the report, as a backend summing gen_ai.usage would.
    cached = sum(c.attributes["gen_ai.usage.cache_read.input_tokens"] for c in calls)
    reasoning = sum(c.attributes["gen_ai.usage.reasoning.output_tokens"] for c in calls)
    assert (cached, reasoning) == (rep.total.cache_read_tokens, rep.total.reasoning_tokens)
    assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in calls) == rep.total.input_tokens
    assert round(sum(c.attributes.get("gen_ai.usage.cost", 0.0) for c in calls), 10) == round(
        rep.total.cost_usd, 10
    )


def test_cache_and_reasoning_tokens_reach_spans_and_metrics(otel: Otel) -> None:
    """Cache read/write and reasoning tokens land on the call span and tokenmeter.tokens."""
    with tm.track("cached"):
        tm.record(
            model="claude-sonnet-4-5",
            input_tokens=1000,
            output_tokens=300,
            cache_read_tokens=600,
            cache_write_tokens=200,
            reasoning_tokens=120,
        )
    (span,) = [s for s in otel.finished() if s.kind == SpanKind.CLIENT]
    assert {k: v for k, v in span.attributes.items() if k.startswith("gen_ai.usage.")} == {
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 600,
        "gen_ai.usage.cache_creation.input_tokens": 200,
        "gen_ai.usage.reasoning.output_tokens": 120,
        "gen_ai.usage.cost": span.attributes["gen_ai.usage.cost"],
    }
    assert round(span.attributes["gen_ai.usage.cost"], 10) == round(tm.report().total.cost_usd, 10)
    assert (span.name, span.attributes["gen_ai.provider.name"]) == (
        "chat claude-sonnet-4-5",
        "anthropic",
    )
    assert usage_of(otel.points(), lambda a: True) == exact(tm.report().total)


def test_metric_scope_depth_caps_the_scope_attribute() -> None:
    """With metric_scope_depth=2, deeper scopes count under their depth-2 ancestor."""
    o = Otel(metric_scope_depth=2)
    try:
        with tm.track("a"), tm.track("b"), tm.track("c"), tm.track("d"):
            tm.record(model="gpt-4o-mini", input_tokens=5, output_tokens=1)
        with tm.track("a"):
            tm.record(model="gpt-4o-mini", input_tokens=7, output_tokens=1)
    finally:
        tokenmeter.otel.uninstrument()
    points = o.points()
    assert {p.attrs["tokenmeter_scope"] for p in points} == {"a/b", "a"}
    assert usage_of(points, lambda a: a["tokenmeter_scope"] == "a/b") == exact(
        tm.report().node("a", "b").usage
    )
    (span,) = [
        s
        for s in o.finished()
        if s.kind == SpanKind.CLIENT and s.attributes["gen_ai.usage.input_tokens"] == 5
    ]
    assert span.attributes["tokenmeter.scope"] == "a/b/c/d"  # spans keep the whole path


def test_no_metadata_or_attributes_unless_opted_in() -> None:
    """Scope attributes and record metadata stay out of spans and metrics unless opted in."""
    for opt_in in (False, True):
        o = Otel(include_metadata=opt_in)
        try:
            with tm.track("req", tenant="acme"):
                tm.record(
                    model="gpt-4o-mini", input_tokens=1, output_tokens=1, metadata={"user": "u1"}
                )
        finally:
            tokenmeter.otel.uninstrument()
        span_keys = {k for s in o.finished() for k in s.attributes}
        metric_keys = {k for p in o.points() for k in p.attrs}
        leaked = {k for k in span_keys | metric_keys if "tenant" in k or "user" in k}
        assert leaked == (
            {"tokenmeter.attribute.tenant", "tokenmeter.metadata.user"} if opt_in else set()
        )
        assert not {k for k in metric_keys if "tenant" in k or "user" in k}
        tm.reset()


def test_semconv_opt_in_drops_the_old_provider_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    """gen_ai.system (the v1.36 name) is emitted beside gen_ai.provider.name unless opted out."""
    seen = []
    for env in ("", "http,gen_ai_latest_experimental"):
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", env)
        o = Otel()
        try:
            tm.record(model="gpt-4o-mini", input_tokens=1, output_tokens=1)
        finally:
            tokenmeter.otel.uninstrument()
        (span,) = o.finished()
        seen.append((span.attributes.get("gen_ai.system"), span.attributes["gen_ai.provider.name"]))
        assert all(("gen_ai_system" in p.attrs) == (env == "") for p in o.points())
    assert seen == [("openai", "openai"), (None, "openai")]


def test_a_raising_exporter_never_reaches_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    """A span processor and a metric reader that raise are logged; calls return and count."""

    class Boom(SimpleSpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            raise RuntimeError("exporter down")

    tp = TracerProvider()
    tp.add_span_processor(Boom(InMemorySpanExporter()))
    tokenmeter.otel.instrument(tp, MeterProvider(metric_readers=[InMemoryMetricReader()]))
    try:
        with caplog.at_level(logging.ERROR, logger="tokenmeter"), tm.track("x"):
            r = ask()
    finally:
        tokenmeter.otel.uninstrument()
    assert r.choices[0].message.content == "hello there"
    assert tm.report().node("x").usage.calls == 1
    assert "exporter down" in caplog.text
    assert context.get_current() == {}  # the scope's OTel context was still detached


def test_uninstrument_stops_export_and_ends_open_scopes() -> None:
    """After uninstrument() nothing is exported; scope spans still open are ended."""
    o = Otel()
    with tm.track("open"):
        tokenmeter.otel.uninstrument()
        ask()
    assert [s.name for s in o.finished()] == ["open"]
    assert o.points() == []
    assert tokenmeter.otel.instrumented() is False
    assert context.get_current() == {}


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"metric_scope_depth": -1}, "metric_scope_depth"), ({"spans": "yes"}, "spans")],
)
def test_bad_arguments_raise_and_change_nothing(kw: dict[str, Any], field: str) -> None:
    """A bad argument raises ValueError naming it and leaves export as it was."""
    with pytest.raises(ValueError, match=field):
        tokenmeter.otel.instrument(**kw)
    assert tokenmeter.otel.instrumented() is False


def test_observers_see_a_stream_in_the_context_its_call_was_made_in() -> None:
    """A stream consumed elsewhere reaches on_call in a copy of its call's context."""
    import contextvars

    from tokenmeter import _events

    where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="outside")
    seen: list[str] = []

    class Watch:
        def on_call(self, record: Any, frame: Any) -> None:
            seen.append(where.get())

    watch = Watch()
    _events.add_observer(watch)
    try:
        token = where.set("at the call")
        stream = ask(text="a b c", stream=True)
        where.reset(token)
        for _ in stream:
            pass
    finally:
        _events.remove_observer(watch)
    assert (seen, where.get()) == (["at the call"], "outside")


def test_import_tokenmeter_does_not_import_opentelemetry() -> None:
    """`import tokenmeter` (and using it) leaves opentelemetry unimported."""
    import subprocess
    import sys

    code = (
        "import sys, tokenmeter as tm; tm.record(model='gpt-4o-mini', input_tokens=1,"
        " output_tokens=1); print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_path_received_in_baggage_prefixes_this_services_scopes() -> None:
    """A path received in baggage prefixes the exported scopes, unless baggage=False."""
    from opentelemetry import baggage

    for use_baggage, want in ((True, {"gw/agent", "gw/agent/job"}), (False, {"", "job"})):
        o = Otel(baggage=use_baggage)
        token = context.attach(baggage.set_baggage("tokenmeter.scope", "gw/agent"))
        try:
            tm.record(model="gpt-4o-mini", input_tokens=1, output_tokens=1)
            with tm.track("job"):
                tm.record(model="gpt-4o-mini", input_tokens=2, output_tokens=1)
                inner = baggage.get_baggage("tokenmeter.scope")
        finally:
            context.detach(token)
            tokenmeter.otel.uninstrument()
        assert inner == ("gw/agent/job" if use_baggage else "gw/agent")
        points = o.points()
        assert {p.attrs["tokenmeter_scope"] for p in points} == want
        spans = {s.name: s.attributes["tokenmeter.scope"] for s in o.finished()}
        assert spans["job"] == ("gw/agent/job" if use_baggage else "job")
        if use_baggage:
            assert_points_match(points, tm.report(), prefix="gw/agent")
        tm.reset()


def test_instrumenting_again_continues_the_counters() -> None:
    """instrument() twice on one meter provider: one series per attribute set, summed on."""
    o = Otel()
    tm.record(model="gpt-4o-mini", input_tokens=3, output_tokens=1)
    tokenmeter.otel.instrument(o.tracer_provider, o.meter_provider)
    try:
        tm.record(model="gpt-4o-mini", input_tokens=4, output_tokens=1)
    finally:
        tokenmeter.otel.uninstrument()
    calls = [p for p in o.points() if p.metric == "calls"]
    assert [p.value for p in calls] == [2]
    assert usage_of(o.points(), lambda a: True) == exact(tm.report().total)


def test_a_stream_read_after_its_scope_ended_exports_that_scope(otel: Otel) -> None:
    """A stream consumed outside its scope is exported once, on the scope it was made in."""
    with tm.track("outer"), tm.track("s"):
        stream = ask(text="a b c", stream=True)
    for _ in stream:
        pass
    (call,) = [s for s in otel.finished() if s.kind == SpanKind.CLIENT]
    (scope,) = [s for s in otel.finished() if s.name == "s"]
    assert call.attributes["tokenmeter.scope"] == "outer/s"
    assert call.parent is not None
    assert call.parent.span_id == scope.context.span_id
    assert {p.attrs["tokenmeter_scope"] for p in otel.points()} == {"outer/s"}
    assert_points_match(otel.points(), tm.report())


def test_token_usage_only_where_the_operation_uses_tokens(otel: Otel) -> None:
    """An embedding adds no output point; an image generation without counts adds none."""
    litellm.embedding(model="text-embedding-3-small", input=["a b"], mock_response=[0.1, 0.2])
    litellm.image_generation(model="openai/dall-e-3", prompt="a cat", mock_response="x")
    hist = [p for p in otel.points() if p.metric.startswith("hist_")]
    assert [(p.metric, p.attrs["gen_ai_operation_name"]) for p in hist] == [
        ("hist_input", "embeddings")
    ]
    assert usage_of(otel.points(), lambda a: True) == exact(tm.report().total)
