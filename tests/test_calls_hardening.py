"""LiteLLM calls made hostile: strict servers, calls made in callbacks, mutated results."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger
from support.callbacks import registered
from support.versions import acompletion_flag_works, async_callback_call_works

import tokenmeter as tm
from tests.fakeproviders import FakeOpenAI, StrictOpenAI, block_external_network
from tokenmeter._litellm import wrappers
from tokenmeter._meter import DEFAULT_METER

MSGS = [{"role": "user", "content": "hi"}]
CONTENT = "one two three four"
# LiteLLM's estimate for a stream of CONTENT without a usage chunk: 8 in / 4 out (gpt-4o-mini).
ESTIMATE_COST = 8 * 1.5e-7 + 4 * 6e-7
USAGE = {"prompt": 1000, "completion": 200}
# gpt-4o-mini: 1000 * 1.5e-7 + 200 * 6e-7
SERVED_COST = 0.00027


def _counts(u: tm.Usage) -> tuple[int, int, int, int, int]:
    """(calls, input, output, failed, estimated)."""
    return (u.calls, u.input_tokens, u.output_tokens, u.failed_calls, u.estimated_calls)


@pytest.fixture(autouse=True)
def _offline() -> Iterator[None]:
    with block_external_network() as attempted:
        yield
    assert attempted == []


@pytest.fixture(autouse=True)
def _forget_refusals() -> Iterator[None]:
    wrappers._stream_options_refused.clear()
    yield
    wrappers._stream_options_refused.clear()


@pytest.fixture
def strict() -> Iterator[StrictOpenAI]:
    with StrictOpenAI(usage=USAGE, content=CONTENT) as srv:
        yield srv


def _kw(srv: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "api_base": srv.base_url + "/v1",
        "api_key": "sk-fake",
        "messages": MSGS,
        **extra,
    }


def _deployment(srv: FakeOpenAI) -> dict[str, Any]:
    return {k: v for k, v in _kw(srv, max_retries=0).items() if k != "messages"}


def _text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _stream(mode: str, **kwargs: Any) -> list[Any]:
    if mode == "sync":
        return list(litellm.completion(stream=True, **kwargs))

    async def run() -> list[Any]:
        return [c async for c in await litellm.acompletion(stream=True, **kwargs)]

    return asyncio.run(run())


# -- item: strict servers reject the injected stream_options ----------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_strict_server_stream_returns_as_without_tokenmeter(
    mode: str, strict: StrictOpenAI
) -> None:
    """A strict server's 400 on our stream_options: retried once without it, one estimated call."""
    with tm.track("s") as scope:
        chunks = _stream(mode, **_kw(strict))
    assert _text(chunks) == CONTENT
    first, second = strict.requests
    assert first.json["stream_options"] == {"include_usage": True}
    assert "stream_options" not in second.json
    assert _counts(scope.usage) == (1, 8, 4, 0, 1)
    assert scope.usage.cost_usd == pytest.approx(ESTIMATE_COST, rel=1e-12)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_strict_server_is_remembered_per_api_base(mode: str, strict: StrictOpenAI) -> None:
    """After one refusal, that api_base gets no stream_options; another api_base still does."""
    with FakeOpenAI(usage=USAGE, content=CONTENT) as lenient, tm.track("s") as scope:
        _stream(mode, **_kw(strict))
        strict.clear()
        _stream(mode, **_kw(strict))
        _stream(mode, **_kw(lenient))
        assert [sorted(r.json) for r in strict.requests] == [["messages", "model", "stream"]]
        assert lenient.requests[0].json["stream_options"] == {"include_usage": True}
    # Two estimated streams from the strict server, one exact from the lenient one.
    assert _counts(scope.usage) == (3, 8 + 8 + 1000, 4 + 4 + 200, 0, 2)
    assert scope.usage.cost_usd == pytest.approx(2 * ESTIMATE_COST + SERVED_COST, rel=1e-12)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_another_400_is_not_retried(mode: str) -> None:
    """A 400 that does not name stream_options raises as it is: one request, one failed call."""
    with FakeOpenAI() as srv, tm.track("s") as scope:
        srv.fail_next(status=400)
        with pytest.raises(litellm.BadRequestError, match="fake error 400"):
            _stream(mode, **_kw(srv))
        assert len(srv.requests) == 1
    assert _counts(scope.usage) == (1, 0, 0, 1, 0)
    assert wrappers._stream_options_refused == {}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_users_own_stream_options_are_never_touched(mode: str, strict: StrictOpenAI) -> None:
    """stream_options the caller passed are sent as given; the server's refusal is the caller's."""
    with tm.track("s") as scope, pytest.raises(litellm.BadRequestError, match="stream_options"):
        _stream(mode, **_kw(strict, stream_options={"include_usage": True}))
    assert len(strict.requests) == 1
    assert _counts(scope.usage) == (1, 0, 0, 1, 0)


def test_failure_of_the_retry_is_one_failed_call(strict: StrictOpenAI) -> None:
    """The retry without stream_options fails too (a 500): the caller gets that error, once."""
    with tm.track("s") as scope:
        refusal = {"error": {"message": "Unrecognized request argument supplied: stream_options"}}
        strict.fail_next(status=400, body=refusal)
        strict.fail_next(status=503)
        with pytest.raises(litellm.ServiceUnavailableError):
            litellm.completion(stream=True, max_retries=0, **_kw(strict))
    assert len(strict.requests) == 2
    assert _counts(scope.usage) == (1, 0, 0, 1, 0)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_router_stream_to_a_strict_deployment(mode: str, strict: StrictOpenAI) -> None:
    """A Router stream whose deployment is strict returns its text, recorded once, estimated."""
    router = litellm.Router(
        model_list=[
            {
                "model_name": "m",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": strict.base_url + "/v1",
                    "api_key": "sk-fake",
                },
            }
        ]
    )
    with tm.track("s") as scope:
        if mode == "sync":
            chunks = list(router.completion(model="m", messages=MSGS, stream=True))
        else:

            async def run() -> list[Any]:
                stream = await router.acompletion(model="m", messages=MSGS, stream=True)
                return [c async for c in stream]

            chunks = asyncio.run(run())
    assert _text(chunks) == CONTENT
    assert ["stream_options" in r.json for r in strict.requests] == [True, False]
    assert _counts(scope.usage) == (1, 8, 4, 0, 1)


def test_plain_calls_to_a_strict_server_are_unchanged(strict: StrictOpenAI) -> None:
    """A non-streamed call gets no stream_options: one request, the served usage."""
    with tm.track("s") as scope:
        litellm.completion(**_kw(strict))
    assert len(strict.requests) == 1
    assert _counts(scope.usage) == (1, 1000, 200, 0, 0)
    assert scope.usage.cost_usd == pytest.approx(SERVED_COST, rel=1e-12)


@acompletion_flag_works
def test_completion_with_acompletion_true_to_a_strict_server(strict: StrictOpenAI) -> None:
    """completion(..., acompletion=True, stream=True): refused, made again when awaited, once."""

    async def run() -> list[Any]:
        stream = await litellm.completion(stream=True, acompletion=True, **_kw(strict))
        return [c async for c in stream]

    with tm.track("s") as scope:
        chunks = asyncio.run(run())
    assert _text(chunks) == CONTENT
    assert ["stream_options" in r.json for r in strict.requests] == [True, False]
    assert _counts(scope.usage) == (1, 8, 4, 0, 1)


# -- item: LLM calls made inside LiteLLM callbacks and hooks ----------------------------------

# gpt-4o: 1000 * 2.5e-6 + 200 * 1e-5
JUDGE_COST = 0.0045


class _Judge(CustomLogger):  # type: ignore[misc]
    """A callback that makes a gpt-4o call of its own at ``hook``, once, in scope ``scope``."""

    def __init__(self, srv: FakeOpenAI, hook: str, scope: str | None = None) -> None:
        super().__init__()
        self.srv, self.hook, self.scope = srv, hook, scope
        self.made = threading.Event()
        self.busy = False
        self.answers: list[str] = []

    def _judge(self) -> None:
        if self.busy or self.made.is_set():
            return
        self.busy = True
        try:
            with tm.track(self.scope) if self.scope else contextlib.nullcontext():
                r = litellm.completion(**_kw(self.srv, model="openai/gpt-4o"))
            self.answers.append(r.model)
        finally:
            self.busy = False
            self.made.set()

    async def _ajudge(self) -> None:
        if self.busy or self.made.is_set():
            return
        self.busy = True
        try:
            with tm.track(self.scope) if self.scope else contextlib.nullcontext():
                r = await litellm.acompletion(**_kw(self.srv, model="openai/gpt-4o"))
            self.answers.append(r.model)
        finally:
            self.busy = False
            self.made.set()

    def _ours(self, kwargs: Any) -> bool:
        """Whether an event is of a call to this test's server: LiteLLM may deliver an
        earlier call's success event late (queued when its event loop ended), and a
        callback judging that call rightly lands on that call's scope."""
        api_base = (kwargs.get("litellm_params") or {}).get("api_base") or ""
        return str(api_base).startswith(self.srv.base_url)

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        if self.hook == "pre_call":
            self._judge()

    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        if self.hook == "success" and self._ours(kwargs):
            self._judge()

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        if self.hook == "async_success" and self._ours(kwargs):
            await self._ajudge()

    async def async_pre_call_deployment_hook(self, kwargs: Any, call_type: Any) -> Any:
        if self.hook == "async_pre_call":
            await self._ajudge()
        return None


def _by_model(*path: str) -> dict[str, tuple[int, int, int, float | None]]:
    """model -> (calls, input, output, cost) of the calls made in scope ``path`` itself."""
    out = {}
    for (model, _provider, _module, _op), u in tm.report().node(*path).breakdown.items():
        out[model] = (u.calls, u.input_tokens, u.output_tokens, u.cost_usd)
    return out


@pytest.mark.parametrize(
    ("hook", "mode"),
    [
        ("pre_call", "sync"),
        ("pre_call", "async"),
        ("success", "sync"),
        pytest.param("async_success", "async", marks=async_callback_call_works),
        ("async_pre_call", "async"),
    ],
)
def test_a_call_made_in_a_callback_is_a_call_of_its_own(hook: str, mode: str) -> None:
    """An outer gpt-4o-mini call whose callback makes a gpt-4o call: two calls, each its own."""
    with FakeOpenAI(usage=USAGE, content=CONTENT) as srv, registered(_Judge(srv, hook)) as judge:

        async def run() -> Any:
            r = await litellm.acompletion(**_kw(srv))
            for _ in range(500):  # a success callback runs in its own task, after the call
                if judge.made.is_set():
                    break
                await asyncio.sleep(0.01)
            return r

        with tm.track("s"):
            r = litellm.completion(**_kw(srv)) if mode == "sync" else asyncio.run(run())
        assert judge.made.wait(5)
    assert r.model == "gpt-4o-mini"
    assert judge.answers == ["gpt-4o"]
    got = _by_model("s")
    assert got == {
        "gpt-4o-mini": (1, 1000, 200, pytest.approx(SERVED_COST, rel=1e-12)),
        "gpt-4o": (1, 1000, 200, pytest.approx(JUDGE_COST, rel=1e-12)),
    }


@pytest.mark.parametrize("hook", ["pre_call", "success"])
def test_a_callbacks_call_lands_on_the_scope_current_when_it_was_made(hook: str) -> None:
    """The callback opens scope "judge": its call lands there, the outer call on "s"."""
    with (
        FakeOpenAI(usage=USAGE, content=CONTENT) as srv,
        registered(_Judge(srv, hook, scope="judge")) as judge,
        tm.track("s"),
    ):
        litellm.completion(**_kw(srv))
        assert judge.made.wait(5)
    assert _by_model("s") == {"gpt-4o-mini": (1, 1000, 200, pytest.approx(SERVED_COST))}
    assert _by_model("s", "judge") == {"gpt-4o": (1, 1000, 200, pytest.approx(JUDGE_COST))}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_router_retries_with_a_judging_callback_count_once(mode: str) -> None:
    """A Router call retried after a 500, with a pre-call judge: one call each, own models."""
    with (
        FakeOpenAI(usage=USAGE, content=CONTENT) as srv,
        FakeOpenAI(usage=USAGE, content=CONTENT) as judge_srv,
        registered(_Judge(judge_srv, "pre_call")) as judge,
    ):
        router = litellm.Router(
            model_list=[{"model_name": "m", "litellm_params": _deployment(srv)}],
            num_retries=2,
            retry_after=0,
        )
        srv.fail_next(count=1, status=500)
        with tm.track("s"):
            if mode == "sync":
                r = router.completion(model="m", messages=MSGS)
            else:
                r = asyncio.run(router.acompletion(model="m", messages=MSGS))
        assert judge.made.wait(5)
        assert len(srv.requests) == 2  # the 500, then the answer
    assert r.model == "gpt-4o-mini"
    assert _by_model("s") == {
        "gpt-4o-mini": (1, 1000, 200, pytest.approx(SERVED_COST, rel=1e-12)),
        "gpt-4o": (1, 1000, 200, pytest.approx(JUDGE_COST, rel=1e-12)),
    }
    assert tm.report().node("s").usage.failed_calls == 0


# -- item: a response mutated after the call is recorded as returned ----------------------------

DETAILED = {"prompt": 1000, "completion": 200, "cached": 400, "reasoning": 50}
# gpt-4o-mini: 600 uncached * 1.5e-7 + 400 cached * 7.5e-8 + 200 output * 6e-7
DETAILED_COST = 0.00024


def _zero_prompt(r: Any) -> None:
    r.usage.prompt_tokens = 0


def _more_output(r: Any) -> None:
    r.usage.completion_tokens = 10**6


def _no_cached(r: Any) -> None:
    r.usage.prompt_tokens_details.cached_tokens = 0


def _no_reasoning(r: Any) -> None:
    r.usage.completion_tokens_details.reasoning_tokens = 0


def _anthropic_extra(r: Any) -> None:
    r.usage.cache_read_input_tokens = 900


def _hidden_cleared(r: Any) -> None:
    r._hidden_params.clear()


def _free(r: Any) -> None:
    r._hidden_params["response_cost"] = 0.0


def _other_model(r: Any) -> None:
    r._hidden_params["litellm_model_name"] = "gpt-4o"
    r._hidden_params["response_cost"] = None
    r.model = "gpt-4o"


def _usage_dropped(r: Any) -> None:
    r.usage = None


MUTATIONS = [
    _zero_prompt,
    _more_output,
    _no_cached,
    _no_reasoning,
    _anthropic_extra,
    _hidden_cleared,
    _free,
    _other_model,
    _usage_dropped,
]


@pytest.mark.parametrize("n", [1, 6])  # 1: counted alone; 6: a run summed by columns
@pytest.mark.parametrize("mutate", MUTATIONS, ids=lambda f: f.__name__.strip("_"))
def test_a_response_changed_after_the_call_is_recorded_as_returned(mutate: Any, n: int) -> None:
    """User code changing a queued response (usage, hidden params, model) changes nothing."""
    meter = DEFAULT_METER
    with FakeOpenAI(usage=DETAILED) as srv, tm.track("s") as scope:
        litellm.completion(**_kw(srv))  # the first call files the tally: recorded at once
        assert scope.usage.calls == 1  # (and this reading counts whatever is queued)
        responses = [litellm.completion(**_kw(srv)) for _ in range(n)]
        assert len(meter._pending) == n  # queued, counted at the next reading
        for r in responses:
            mutate(r)
    u = scope.usage
    k = n + 1
    assert (u.calls, u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens) == (
        k,
        1000 * k,
        400 * k,
        200 * k,
        50 * k,
    )
    assert (u.failed_calls, u.estimated_calls, u.unpriced_calls) == (0, 0, 0)
    assert u.cost_usd == pytest.approx(DETAILED_COST * k, rel=1e-12)
    assert list(tm.report().by_model()) == ["gpt-4o-mini"]
