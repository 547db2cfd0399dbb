"""Helpers for the OpenTelemetry tests: metric points from any exporter, compared with a report.

Every exporter's output is turned into the same `Point`s: the metric (``calls``, ``cost``,
a token type of ``tokenmeter.tokens``, or ``hist_input``/``hist_output`` for the sums of
``gen_ai.client.token.usage``), its attributes with ``_`` for ``.`` in keys and every value
a string (Prometheus' spelling), and the value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import litellm
import pytest
from opentelemetry import trace

import tokenmeter as tm
from tests.fakeproviders import FakeOpenAI

MSGS = [{"role": "user", "content": "hi"}]
WIRE_USAGE = {"prompt": 1200, "completion": 300, "cached": 1000, "reasoning": 120}

TOKEN_TYPES = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_tokens",
    "cache_creation": "cache_write_tokens",
    "reasoning": "reasoning_tokens",
}


class Point(NamedTuple):
    metric: str
    attrs: dict[str, str]
    value: float


def _norm(attrs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    out = {}
    for k, v in attrs:
        out[k.replace(".", "_")] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def _point(name: str, attrs: dict[str, str], value: float) -> Point | None:
    """The `Point` for a sample of OTel metric ``name`` (None for metrics not compared)."""
    if name == "tokenmeter.calls":
        return Point("calls", attrs, value)
    if name == "tokenmeter.cost":
        return Point("cost", attrs, value)
    if name == "tokenmeter.tokens":
        kind = attrs.pop("tokenmeter_token_type")
        return Point(kind, attrs, value)
    if name == "gen_ai.client.token.usage":
        kind = attrs.pop("gen_ai_token_type")
        return Point("hist_" + kind, attrs, value)
    return None


def points_from_sdk(data: Any) -> list[Point]:
    """Points from an SDK ``MetricsData`` (an ``InMemoryMetricReader``'s)."""
    points: list[Point] = []
    if data is None:  # nothing recorded
        return points
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for dp in metric.data.data_points:
                    value = dp.sum if hasattr(dp, "bucket_counts") else dp.value
                    p = _point(metric.name, _norm(dp.attributes.items()), value)
                    if p is not None:
                        points.append(p)
    return points


def points_from_otlp(request: Any) -> list[Point]:
    """Points from a decoded OTLP ``ExportMetricsServiceRequest``."""
    points = []
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                for dp in getattr(metric, kind).data_points:
                    if kind == "histogram":
                        value = dp.sum
                    else:
                        value = dp.as_double if dp.WhichOneof("value") == "as_double" else dp.as_int
                    attrs = _norm((kv.key, _any_value(kv.value)) for kv in dp.attributes)
                    p = _point(metric.name, attrs, value)
                    if p is not None:
                        points.append(p)
    return points


def _any_value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value"))


#: Prometheus family names (as prometheus_client's parser gives them) -> OTel metric names.
PROMETHEUS_FAMILIES = {
    "tokenmeter_calls": "tokenmeter.calls",
    "tokenmeter_cost_USD": "tokenmeter.cost",
    "tokenmeter_tokens": "tokenmeter.tokens",
    "gen_ai_client_token_usage": "gen_ai.client.token.usage",
}


def points_from_prometheus(text: str) -> list[Point]:
    """Points from a Prometheus text exposition, parsed by prometheus_client."""
    from prometheus_client.parser import text_string_to_metric_families

    points = []
    for family in text_string_to_metric_families(text):
        name = PROMETHEUS_FAMILIES.get(family.name)
        if name is None:
            continue
        for sample in family.samples:
            if family.type == "histogram" and not sample.name.endswith("_sum"):
                continue
            if family.type == "counter" and not sample.name.endswith("_total"):
                continue
            attrs = {k: v for k, v in sample.labels.items() if not k.startswith("otel_scope")}
            p = _point(name, attrs, sample.value)
            if p is not None:
                points.append(p)
    return points


def usage_of(points: Iterable[Point], where: Callable[[dict[str, str]], bool]) -> tm.Usage:
    """The `tm.Usage` the points whose attributes pass ``where`` add up to."""
    f: dict[str, float] = {}
    hist = {"hist_input": 0.0, "hist_output": 0.0}

    def add(key: str, v: float) -> None:
        f[key] = f.get(key, 0) + v

    for p in points:
        if not where(p.attrs):
            continue
        if p.metric == "calls":
            add("calls", p.value)
            if p.attrs["tokenmeter_priced"] == "false":
                add("unpriced_calls", p.value)
            if p.attrs.get("error_type"):  # Prometheus gives absent labels as ""
                add("failed_calls", p.value)
            if p.attrs["tokenmeter_estimated"] == "true":
                add("estimated_calls", p.value)
        elif p.metric == "cost":
            add("cost_usd", p.value)
        elif p.metric in hist:
            hist[p.metric] += p.value
        else:
            add(TOKEN_TYPES[p.metric], p.value)
    # The conventions' histogram and tokenmeter's counter agree on input and output.
    assert (hist["hist_input"], hist["hist_output"]) == (
        f.get("input_tokens", 0),
        f.get("output_tokens", 0),
    )
    kwargs: dict[str, Any] = {k: int(v) for k, v in f.items() if k != "cost_usd"}
    kwargs["cost_usd"] = round(f.get("cost_usd", 0.0), 10)
    return tm.Usage(**kwargs)


def exact(u: tm.Usage) -> tm.Usage:
    """``u`` with its cost rounded to tokenmeter's resolution (10⁻¹⁰ dollars)."""
    return tm.Usage(
        **{
            **{k: getattr(u, k) for k in TOKEN_TYPES.values()},
            "calls": u.calls,
            "cost_usd": round(u.cost_usd, 10),
            "unpriced_calls": u.unpriced_calls,
            "failed_calls": u.failed_calls,
            "estimated_calls": u.estimated_calls,
        }
    )


def assert_points_match(points: list[Point], rep: tm.Report, prefix: str = "") -> int:
    """Per model, per scope (own and inclusive) and in total, the points equal ``rep``.

    ``prefix`` is the scope path the exporting service received in baggage. Returns how
    many comparisons were made.
    """
    n = 0
    assert usage_of(points, lambda a: True) == exact(rep.total)
    for model, u in rep.by_model().items():
        assert usage_of(points, lambda a, m=model: a["gen_ai_response_model"] == m) == exact(u)
        n += 1
    for node in rep.walk():
        if not node.path:
            continue
        path = "/".join((prefix, *node.path) if prefix else node.path)
        own = usage_of(points, lambda a, p=path: a["tokenmeter_scope"] == p)
        incl = usage_of(
            points,
            lambda a, p=path: (
                a["tokenmeter_scope"] == p or a["tokenmeter_scope"].startswith(p + "/")
            ),
        )
        assert (path, own) == (path, exact(node.self_usage))
        assert (path, incl) == (path, exact(node.usage))
        n += 2
    return n


def ask(model: str = "gpt-4o-mini", text: str = "hello there", **kw: Any) -> Any:
    return litellm.completion(model=model, messages=MSGS, mock_response=text, **kw)


def worker(i: int) -> None:
    with tm.track("worker"):
        ask("gpt-4o", "w " * (i + 1))


async def task(i: int) -> None:
    async with tm.track("task"):
        await litellm.acompletion(model="gpt-4o-mini", messages=MSGS, mock_response="t " * (i + 1))


async def scenario(tracer: trace.Tracer) -> Any:
    """A tree with threads, tasks, streams, a failure, a fallback, an unpriced model and
    calls to a server speaking OpenAI's wire format (cached and reasoning tokens)."""
    with tm.track("main", module="app"):
        ask()
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(worker, range(3)))
        await asyncio.gather(*(task(i) for i in range(2)))
        with tm.track("stream"):
            with tracer.start_as_current_span("user-span"):
                stream = ask(text="one two three four", stream=True)
            for _ in stream:  # consumed after the user's span ended
                pass
        with tm.track("fail", operation="risky"), pytest.raises(litellm.InternalServerError):
            ask(text="litellm.InternalServerError")
        with tm.track("fallback"):
            ask(
                "openai/no-such-model-1",
                "litellm.InternalServerError",
                fallbacks=[{"model": "gpt-4o-mini", "mock_response": "ok"}],
            )
        with tm.track("unpriced"):
            ask("openai/no-such-model-1", "x y")
        with tm.track("wire"), FakeOpenAI(usage=WIRE_USAGE) as srv:
            # The provider's wire format: cached and reasoning tokens, a stream's usage chunk.
            wire = {"api_base": srv.base_url + "/v1", "api_key": "sk-fake", "messages": MSGS}
            litellm.completion(model="openai/o4-mini", **wire)
            for _ in litellm.completion(model="openai/gpt-4o-mini", stream=True, **wire):
                pass
    return tm.report()
