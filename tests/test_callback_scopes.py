"""Calls made by LiteLLM success callbacks that run late, on a later event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger
from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
from support.callbacks import registered

import tokenmeter as tm
from tests.fakeproviders import block_external_network

MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def _offline() -> Iterator[None]:
    with block_external_network() as attempted:
        yield
    assert attempted == []


class _JudgeEach(CustomLogger):
    """Once armed, judges each call whose message is a key of ``judged`` with a gpt-4o call."""

    def __init__(self) -> None:
        super().__init__()
        self.judged = {"first": 0, "s": 0}
        self.armed = False

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        said = (kwargs.get("messages") or [{}])[0].get("content")
        if not self.armed or kwargs.get("model") != "gpt-4o-mini" or said not in self.judged:
            return
        self.judged[said] += 1
        await litellm.acompletion(model="gpt-4o", messages=MSGS, mock_response="fine")


def _calls(*path: str) -> dict[str, int]:
    """model -> calls made in scope ``path`` itself."""
    return {m: u.calls for (m, _p, _o, _x), u in tm.report().node(*path).breakdown.items()}


def _ask(said: str) -> Any:
    msgs = [{"role": "user", "content": said}]
    return litellm.acompletion(model="gpt-4o-mini", messages=msgs, mock_response="x")


def test_a_late_success_callbacks_call_lands_on_the_scope_of_the_call_it_logs() -> None:
    """Events of "first" run late, on the loop of "s": each judge call lands with its call."""
    n = 300
    # Events an earlier test in this process left queued would run on the loop of "s" too.
    if GLOBAL_LOGGING_WORKER.pending_count:
        asyncio.run(asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), timeout=30))
    assert GLOBAL_LOGGING_WORKER.pending_count == 0
    tm.reset()
    judge = _JudgeEach()
    with registered(judge):

        async def many() -> None:
            await asyncio.gather(*(_ask("first") for _ in range(n)))

        # LiteLLM's logging worker does not start on the loop of "first", as when it falls
        # behind: the success events of its calls stay queued until the next event loop, the
        # one of "s", where LiteLLM carries them over and runs them.
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(GLOBAL_LOGGING_WORKER, "start", GLOBAL_LOGGING_WORKER._ensure_queue)
            with tm.track("first"):
                asyncio.run(many())
        assert GLOBAL_LOGGING_WORKER.pending_count == n
        judge.armed = True

        async def one() -> None:
            await _ask("s")
            deadline = time.monotonic() + 30
            while judge.judged["s"] < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), timeout=30)

        with tm.track("s"):
            asyncio.run(one())
    judged = judge.judged["first"]  # the events of "first" run on the loop of "s"
    assert judged == n
    assert _calls("first") == {"gpt-4o-mini": n, "gpt-4o": judged}
    assert _calls("s") == {"gpt-4o-mini": 1, "gpt-4o": 1}
    assert _calls() == {}
    assert tm.report().total.calls == n + judged + 2
