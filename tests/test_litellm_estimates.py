"""Estimated calls (the server sent no usage): counted from the request as it was made,
priced at the price the call was made at, and flagged estimated however LiteLLM fills in.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from support.responses import usage_counts
from support.versions import LITELLM, OPENAI_ROLE_CHUNK

import tokenmeter as tm
from tests.fakeproviders import NO_USAGE_CONTENT, FakeOpenAI, NullUsageOpenAI, serving_offline

MSGS = [{"role": "user", "content": "hi"}]
CONTENT = NO_USAGE_CONTENT
# LiteLLM's counts: MSGS 8 tokens, CONTENT 4 tokens, the prompt "hi" 1 token.


def _run(mode: str, sync: Any, make_async: Any) -> Any:
    return sync() if mode == "sync" else asyncio.run(make_async())


# -- a Router deployment's own prices -------------------------------------------------------

IN_PRICE, OUT_PRICE = 1e-3, 2e-3  # the deployment's, a dollar a thousand tokens and two


@pytest.fixture
def price_map() -> Iterator[None]:
    """LiteLLM's price map as it was, after the test (LiteLLM 1.80's Router files a
    deployment's prices under its model's own name too)."""
    saved = {k: dict(v) if isinstance(v, dict) else v for k, v in litellm.model_cost.items()}
    yield
    litellm.model_cost.clear()
    litellm.model_cost.update(saved)


def _router(srv: FakeOpenAI, where: str, model: str = "openai/gpt-4o-mini") -> litellm.Router:
    prices = {"input_cost_per_token": IN_PRICE, "output_cost_per_token": OUT_PRICE}
    params = {
        "model": model,
        "api_base": srv.base_url + "/v1",
        "api_key": "sk-fake",
        "max_retries": 0,
    }
    deployment: dict[str, Any] = {"model_name": "m", "litellm_params": params}
    if where == "litellm_params":
        params.update(prices)
    else:
        deployment["model_info"] = prices
    return litellm.Router(model_list=[deployment])


@pytest.mark.parametrize("where", ["litellm_params", "model_info"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_router_answer_without_usage_is_priced_at_the_deployments_price(
    where: str, mode: str, bare: FakeOpenAI, price_map: None
) -> None:
    """A Router deployment with its own prices, no usage sent: 8 in / 4 out at $1e-3 / $2e-3."""
    router = _router(bare, where)
    meter = tm.Meter(keep_records=True)
    with meter.track("r"):
        reply = _run(
            mode,
            lambda: router.completion(model="m", messages=MSGS),
            lambda: router.acompletion(model="m", messages=MSGS),
        )
    assert reply.choices[0].message.content == CONTENT
    u = meter.report().node("r").usage
    assert usage_counts(u) == (1, 8, 4, 1, 0, 0)
    assert u.cost_usd == pytest.approx(8 * IN_PRICE + 4 * OUT_PRICE, rel=1e-12)
    [rec] = meter.records()
    assert (rec.model, rec.provider, rec.estimated) == ("gpt-4o-mini", "openai", True)


@pytest.mark.parametrize("where", ["litellm_params", "model_info"])
def test_a_router_answer_with_usage_is_priced_at_the_deployments_price(
    where: str, price_map: None
) -> None:
    """The same deployment, usage served (100 in / 7 out): exact, at the deployment's price."""
    with FakeOpenAI(usage={"prompt": 100, "completion": 7}, content=CONTENT) as served:
        router = _router(served, where)
        with tm.track("r"):
            router.completion(model="m", messages=MSGS)
    u = tm.report().node("r").usage
    assert usage_counts(u) == (1, 100, 7, 0, 0, 0)
    assert u.cost_usd == pytest.approx(100 * IN_PRICE + 7 * OUT_PRICE, rel=1e-12)


# -- Router streams answered without usage: at the deployment's own prices -------------------

# What each kind of stream is opened with, on a Router whose deployment "m" serves `model`.
# Router.text_completion (sync) is left out: LiteLLM's own sends the model group's name
# ("m") on to litellm.text_completion in every release tested (1.80.0 to 1.110), which
# refuses it ("LLM Provider NOT provided ... You passed model=m") before any request.
STREAMS = {
    "chat": ("openai/gpt-4o-mini", "completion", {"messages": MSGS}),
    "responses": ("openai/gpt-4o-mini", "responses", {"input": "hi"}),
    "text": ("openai/gpt-3.5-turbo-instruct", "text_completion", {"prompt": "hi"}),
}
STREAM_CASES = [(k, m) for k in STREAMS for m in ("sync", "async") if (k, m) != ("text", "sync")]


def _router_stream(
    srv: FakeOpenAI, kind: str, mode: str, where: str, read: int | None, **extra: Any
) -> Any:
    """Open a `kind` stream on a Router deployment with its own prices, in a scope of a
    meter keeping records; read it whole (``read`` None), or ``read`` items then close it
    where the stream can be closed, else drop it. The meter, once the stream is recorded."""
    model, entry, kwargs = STREAMS[kind]
    kwargs = {**kwargs, **extra}
    router = _router(srv, where, model)
    meter = tm.Meter(keep_records=True)

    def sync() -> None:
        stream = getattr(router, entry)(model="m", stream=True, **kwargs)
        if read is None:
            list(stream)
            return
        for _ in range(read):
            next(stream)
        if hasattr(stream, "close"):
            stream.close()

    async def main() -> None:
        stream = await getattr(router, "a" + entry)(model="m", stream=True, **kwargs)
        if read is None:
            [_ async for _ in stream]
            return
        for _ in range(read):
            await stream.__anext__()
        if hasattr(stream, "aclose"):
            await stream.aclose()

    with meter.track("s"):
        sync() if mode == "sync" else asyncio.run(main())
    for _ in range(300):  # a stream dropped is recorded when it is collected
        gc.collect()
        if meter.records():
            break
        time.sleep(0.01)
    return meter


@pytest.mark.parametrize("where", ["litellm_params", "model_info"])
@pytest.mark.parametrize(("kind", "mode"), STREAM_CASES)
def test_a_router_stream_without_usage_is_priced_at_the_deployments_price(
    kind: str, mode: str, where: str, bare: FakeOpenAI, price_map: None
) -> None:
    """A Router stream read whole, no usage sent: 1 call, estimated at $1e-3 / $2e-3 a token."""
    meter = _router_stream(bare, kind, mode, where, None)
    [rec] = meter.records()
    # The text "one two three four" is 4 tokens; the input "hi" 8 as a message (a chat's;
    # LiteLLM's count, which it fills in on a Responses stream from 1.106 on), 1 as a text.
    tokens_in = 8 if kind == "chat" or (kind == "responses" and LITELLM >= (1, 106)) else 1
    assert (rec.input_tokens, rec.output_tokens, rec.estimated) == (tokens_in, 4, True)
    assert rec.cost_usd == pytest.approx(tokens_in * IN_PRICE + 4 * OUT_PRICE, rel=1e-12)
    assert rec.model == STREAMS[kind][0].removeprefix("openai/")


@pytest.mark.parametrize("where", ["litellm_params", "model_info"])
@pytest.mark.parametrize(("kind", "mode"), STREAM_CASES)
def test_a_router_stream_stopped_early_is_priced_at_the_deployments_price(
    kind: str, mode: str, where: str, bare: FakeOpenAI, price_map: None
) -> None:
    """Stopped at "one two " (closed, or dropped): its estimate at $1e-3 / $2e-3 a token."""
    # Items up to the text "one two ": chat's "one ", "two " (after a role chunk from 1.83 on);
    # Responses' created,
    # in_progress, item added, part added, "one ", "two "; the text stream's "one", " two".
    read = {"chat": 2 + OPENAI_ROLE_CHUNK, "responses": 6, "text": 2}[kind]
    meter = _router_stream(bare, kind, mode, where, read)
    [rec] = meter.records()
    tokens_in = 8 if kind == "chat" else 1  # "hi" as a chat message, as a text
    assert (rec.input_tokens, rec.output_tokens, rec.estimated) == (tokens_in, 3, True)
    assert rec.cost_usd == pytest.approx(tokens_in * IN_PRICE + 3 * OUT_PRICE, rel=1e-12)


@pytest.mark.parametrize("where", ["litellm_params", "model_info"])
@pytest.mark.parametrize(("kind", "mode"), [c for c in STREAM_CASES if c[0] != "chat"])
def test_a_router_stream_with_usage_is_priced_at_the_deployments_price(
    kind: str, mode: str, where: str, price_map: None
) -> None:
    """A Router stream, usage served (100 in / 7 out): exact, at $1e-3 / $2e-3 a token."""
    with FakeOpenAI(usage={"prompt": 100, "completion": 7}, content=CONTENT) as served:
        # A text stream's usage chunk is sent when asked for (tokenmeter asks on chat only).
        extra = {"stream_options": {"include_usage": True}} if kind == "text" else {}
        meter = _router_stream(served, kind, mode, where, None, **extra)
    [rec] = meter.records()
    assert (rec.input_tokens, rec.output_tokens, rec.estimated) == (100, 7, False)
    assert rec.cost_usd == pytest.approx(100 * IN_PRICE + 7 * OUT_PRICE, rel=1e-12)


# -- a chat completion stream answered without usage ---------------------------------------

ASK = {"stream_options": {"include_usage": True}}  # the caller asking for the usage chunk


def _chat_stream(srv: FakeOpenAI, mode: str, read: int | None, **extra: Any) -> tm.Meter:
    """Open a chat stream to ``srv`` in a scope of a meter keeping records; read it whole
    (``read`` None), or ``read`` chunks then close it (drop it where it has no close).
    The meter, once the stream is recorded."""
    kwargs: dict[str, Any] = {
        "model": "openai/gpt-4o-mini",
        "messages": MSGS,
        "api_base": srv.base_url + "/v1",
        "api_key": "sk-fake",
        "stream": True,
        **extra,
    }

    def sync() -> None:
        stream = litellm.completion(**kwargs)
        if read is None:
            list(stream)
            return
        for _ in range(read):
            next(stream)
        if hasattr(stream, "close"):
            stream.close()

    async def main() -> None:
        stream = await litellm.acompletion(**kwargs)
        if read is None:
            [_ async for _ in stream]
            return
        for _ in range(read):
            await stream.__anext__()
        if hasattr(stream, "aclose"):
            await stream.aclose()

    meter = tm.Meter(keep_records=True)
    with meter.track("s"):
        sync() if mode == "sync" else asyncio.run(main())
    for _ in range(300):  # a stream dropped is recorded when it is collected
        gc.collect()
        if meter.records():
            break
        time.sleep(0.01)
    return meter


@pytest.mark.parametrize("asked", [False, True])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_chat_stream_without_usage_is_estimated(mode: str, asked: bool, bare: FakeOpenAI) -> None:
    """completion(stream=True) read whole, no usage chunk sent: 8 in / 4 out, estimated."""
    # Asked for by the caller, LiteLLM hands out a usage chunk of its own count (8 / 4).
    meter = _chat_stream(bare, mode, None, **(ASK if asked else {}))
    u = meter.report().node("s").usage
    assert usage_counts(u) == (1, 8, 4, 1, 0, 0)
    assert u.cost_usd == pytest.approx(8 * 1.5e-7 + 4 * 6e-7, rel=1e-12)
    [rec] = meter.records()
    assert (rec.estimated, dict(rec.metadata)) == (True, {"stream": True})


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_chat_stream_without_usage_closed_early_is_estimated(mode: str, bare: FakeOpenAI) -> None:
    """A chat stream closed (or dropped) at "one two ", no usage sent: 8 in / 3 out, estimated."""
    meter = _chat_stream(bare, mode, 2 + OPENAI_ROLE_CHUNK)
    u = meter.report().node("s").usage
    assert usage_counts(u) == (1, 8, 3, 1, 0, 0)
    assert u.cost_usd == pytest.approx(8 * 1.5e-7 + 3 * 6e-7, rel=1e-12)
    [rec] = meter.records()
    assert rec.estimated is True


@pytest.mark.parametrize("asked", [False, True])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_chat_stream_with_usage_is_exact(mode: str, asked: bool) -> None:
    """completion(stream=True), usage chunk served (100 in / 7 out): exact, not estimated."""
    with FakeOpenAI(usage={"prompt": 100, "completion": 7}, content=CONTENT) as served:
        meter = _chat_stream(served, mode, None, **(ASK if asked else {}))
    u = meter.report().node("s").usage
    assert usage_counts(u) == (1, 100, 7, 0, 0, 0)
    assert u.cost_usd == pytest.approx(100 * 1.5e-7 + 7 * 6e-7, rel=1e-12)
    [rec] = meter.records()
    assert (rec.estimated, dict(rec.metadata)) == (False, {"stream": True})


# -- a Responses API call whose answer carries no usage ------------------------------------


@pytest.fixture(scope="module")
def _null_usage_server() -> Iterator[NullUsageOpenAI]:
    with NullUsageOpenAI(content=CONTENT) as srv:
        yield srv


@pytest.fixture(params=["absent", "null"])
def no_usage(
    request: pytest.FixtureRequest, bare: FakeOpenAI, _null_usage_server: NullUsageOpenAI
) -> Iterator[FakeOpenAI]:
    """A server whose Responses answers carry no usage: the field left out, or null."""
    if request.param == "absent":
        yield bare
        return
    with serving_offline(_null_usage_server) as server:
        yield server


def _responses_kwargs(srv: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "input": "hi",
        "api_base": srv.base_url + "/v1",
        "api_key": "sk-fake",
        **extra,
    }


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_responses_stream_without_usage_is_estimated(mode: str, no_usage: FakeOpenAI) -> None:
    """responses(stream=True), no usage in response.completed: 1 call, estimated, priced."""
    kwargs = _responses_kwargs(no_usage, stream=True)

    async def read_async() -> list[Any]:
        return [e async for e in await litellm.aresponses(**kwargs)]

    meter = tm.Meter(keep_records=True)
    with meter.track("s"):
        events = _run(mode, lambda: list(litellm.responses(**kwargs)), read_async)
    assert events[-1].type == "response.completed"
    u = meter.report().node("s").usage
    usage = events[-1].response.usage
    if LITELLM >= (1, 106):  # LiteLLM's count, filled in: "hi" as a message, and the text
        assert (usage.input_tokens, usage.output_tokens) == (8, 4)
        tokens_in = 8
    else:  # none filled in: tokenmeter's estimate, "hi" as text, and the text
        assert usage is None
        tokens_in = 1
    assert usage_counts(u) == (1, tokens_in, 4, 1, 0, 0)
    assert u.cost_usd == pytest.approx(tokens_in * 1.5e-7 + 4 * 6e-7, rel=1e-12)
    [rec] = meter.records()
    assert (rec.estimated, dict(rec.metadata)) == (True, {"stream": True})
    assert tm.Report.from_dict(meter.report().to_dict()).node("s").usage.estimated_calls == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_responses_answer_without_usage_is_estimated(mode: str, no_usage: FakeOpenAI) -> None:
    """responses(...) unstreamed, no usage in the answer: 1 call, 1 in / 4 out, estimated."""
    kwargs = _responses_kwargs(no_usage)
    meter = tm.Meter(keep_records=True)
    with meter.track("r"):
        answer = _run(
            mode, lambda: litellm.responses(**kwargs), lambda: litellm.aresponses(**kwargs)
        )
    assert answer.usage is None  # LiteLLM fills in no count here, in any release
    u = meter.report().node("r").usage
    assert usage_counts(u) == (1, 1, 4, 1, 0, 0)  # "hi" as text, and the text
    assert u.cost_usd == pytest.approx(1 * 1.5e-7 + 4 * 6e-7, rel=1e-12)
    [rec] = meter.records()
    meta = {"usage_missing": True}
    assert (rec.model, rec.estimated, dict(rec.metadata)) == ("gpt-4o-mini", True, meta)


# -- a text completion's prompt given positionally ------------------------------------------

# gpt-3.5-turbo-instruct: $1.5e-6 an input token, $2e-6 an output token.
TEXT_MODEL = "openai/gpt-3.5-turbo-instruct"


PROMPTS = [
    ("hi", 1),
    ("hi there, how are you", 6),
    (["hi", "hi there, how are you"], 7),
    ([[15339, 1070]], 2),  # token ids: as many tokens as ids
    ([[15339, 1070], [15339]], 3),
]


@pytest.mark.parametrize(
    ("mode", "how", "prompt", "tokens_in"),
    [
        (mode, how, prompt, n)
        for mode in ("sync", "async")
        for how in ("positional", "keyword")
        for prompt, n in PROMPTS
        # LiteLLM's atext_completion takes a positional list for the model, and fails.
        if not (mode == "async" and how == "positional" and isinstance(prompt, list))
    ],
)
def test_a_text_completion_without_usage_counts_its_prompt(
    mode: str, how: str, prompt: Any, tokens_in: int, bare: FakeOpenAI
) -> None:
    """text_completion(prompt, model=...) without usage: the prompt's tokens in, 4 out."""
    base = {"model": TEXT_MODEL, "api_base": bare.base_url + "/v1", "api_key": "sk-fake"}
    args: tuple[Any, ...] = (prompt,) if how == "positional" else ()
    kwargs = base if how == "positional" else {**base, "prompt": prompt}
    with tm.track("t"):
        _run(
            mode,
            lambda: litellm.text_completion(*args, **kwargs),
            lambda: litellm.atext_completion(*args, **kwargs),
        )
    u = tm.report().node("t").usage
    assert usage_counts(u) == (1, tokens_in, 4, 1, 0, 0)
    assert u.cost_usd == pytest.approx(tokens_in * 1.5e-6 + 4 * 2e-6, rel=1e-12)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_text_completion_stream_without_usage_counts_its_positional_prompt(
    mode: str, bare: FakeOpenAI
) -> None:
    """text_completion("hi there, how are you", stream=True): 6 in / 4 out, estimated, priced."""
    kwargs = {"model": TEXT_MODEL, "api_base": bare.base_url + "/v1", "api_key": "sk-fake"}

    async def read_async() -> str:
        stream = await litellm.atext_completion("hi there, how are you", stream=True, **kwargs)
        return "".join([c.choices[0].text or "" async for c in stream])

    def read() -> str:
        stream = litellm.text_completion("hi there, how are you", stream=True, **kwargs)
        return "".join(c.choices[0].text or "" for c in stream)

    with tm.track("t"):
        assert _run(mode, read, read_async) == CONTENT
    u = tm.report().node("t").usage
    assert usage_counts(u) == (1, 6, 4, 1, 0, 0)
    assert u.cost_usd == pytest.approx(6 * 1.5e-6 + 4 * 2e-6, rel=1e-12)


@pytest.mark.parametrize(
    ("entry", "args", "kwargs", "model", "cost"),
    [
        ("text_completion", ("hi",), {"model": TEXT_MODEL}, "gpt-3.5-turbo-instruct",
         100 * 1.5e-6 + 7 * 2e-6),
        ("responses", ("hi", "openai/gpt-4o-mini"), {}, "gpt-4o-mini", 100 * 1.5e-7 + 7 * 6e-7),
        ("text_completion", ([[15339, 1070]],), {"model": TEXT_MODEL}, "gpt-3.5-turbo-instruct",
         100 * 1.5e-6 + 7 * 2e-6),
    ],
)  # fmt: skip
def test_a_call_with_its_prompt_first_is_named_by_its_model(
    entry: str, args: tuple[Any, ...], kwargs: dict[str, Any], model: str, cost: float
) -> None:
    """text_completion("hi", model=...), responses("hi", model), usage served: under the model."""
    with FakeOpenAI(usage={"prompt": 100, "completion": 7}, content=CONTENT) as served:
        meter = tm.Meter(keep_records=True)
        with meter.track("t"):
            getattr(litellm, entry)(
                *args, api_base=served.base_url + "/v1", api_key="sk-fake", **kwargs
            )
    [rec] = meter.records()
    assert (rec.model, rec.provider, rec.input_tokens, rec.output_tokens, rec.estimated) == (
        model,
        "openai",
        100,
        7,
        False,
    )
    assert rec.cost_usd == pytest.approx(cost, rel=1e-12)


@pytest.mark.parametrize(
    ("entry", "args", "tokens_in", "tokens_out", "cost"),
    [
        ("completion", ("openai/gpt-4o-mini", MSGS), 8, 4, 8 * 1.5e-7 + 4 * 6e-7),
        ("embedding", ("openai/text-embedding-3-small", ["hi there"]), 2, 0, 2 * 2e-8),
        ("responses", ("hi", "openai/gpt-4o-mini"), 1, 4, 1 * 1.5e-7 + 4 * 6e-7),
    ],
)
def test_other_calls_without_usage_count_their_positional_input(
    entry: str,
    args: tuple[Any, ...],
    tokens_in: int,
    tokens_out: int,
    cost: float,
    bare: FakeOpenAI,
) -> None:
    """completion(model, messages), embedding(model, input), responses(input, model): counted."""
    with tm.track("p"):
        getattr(litellm, entry)(*args, api_base=bare.base_url + "/v1", api_key="sk-fake")
    u = tm.report().node("p").usage
    assert usage_counts(u) == (1, tokens_in, tokens_out, 1, 0, 0)
    assert u.cost_usd == pytest.approx(cost, rel=1e-12)
