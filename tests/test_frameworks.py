"""Frameworks that call LLMs: what tokenmeter sees of their calls (docs/dspy.md and neighbours)."""

from __future__ import annotations

import dspy
import pytest

import tokenmeter as tm
from tests.fakeproviders import FakeOpenAI

REPLY = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"


@pytest.mark.parametrize(("engine", "recorded"), [("auto", 0), ("litellm", 1)])
def test_dspy_calls_are_seen_only_through_its_litellm_engine(engine: str, recorded: int) -> None:
    """DSPy's default engine calls the provider past LiteLLM (0 recorded); engine="litellm", 1."""
    with FakeOpenAI(usage={"prompt": 120, "completion": 30}, content=REPLY) as srv:
        lm = dspy.LM(
            "openai/gpt-4o-mini",
            engine=engine,
            api_base=srv.base_url + "/v1",
            api_key="sk-fake",
            cache=False,
        )
        with tm.track("qa"), dspy.context(lm=lm):
            answer = dspy.Predict("question -> answer")(question="Capital of France?").answer
        assert answer == "Paris"
        assert len(srv.requests) == 1  # the provider was called once either way
    usage = tm.report().node("qa").usage
    assert (usage.calls, usage.input_tokens, usage.output_tokens) == (
        recorded,
        120 * recorded,
        30 * recorded,
    )


def test_dspy_batch_threads_land_in_the_scope_they_were_started_in() -> None:
    """Module.batch(num_threads=4) runs in DSPy's thread pool: all 8 calls land in "batch"."""
    lm = dspy.LM(
        "openai/gpt-4o-mini", engine="litellm", api_key="sk-fake", mock_response=REPLY, cache=False
    )
    examples = [dspy.Example(question=f"Question {i}?").with_inputs("question") for i in range(8)]
    with tm.track("batch"), dspy.context(lm=lm):
        answers = dspy.Predict("question -> answer").batch(examples, num_threads=4)
    assert [a.answer for a in answers] == ["Paris"] * 8
    rep = tm.report()
    assert (rep.node("batch").usage.calls, rep.node("batch").usage.total_tokens) == (8, 240)
    assert rep.total.calls == 8


def test_calls_shaped_as_crewais_litellm_path_are_each_recorded_once() -> None:
    """CrewAI's LiteLLM calls (plain, stream with usage, a Task.execute_async thread): 3 exact."""
    import contextvars
    import threading

    import litellm

    with FakeOpenAI(usage={"prompt": 120, "completion": 30}, content="Done.") as srv:
        # As crewai.llm.LLM._prepare_completion_params builds them (crewai 1.15.30).
        params = {
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "Research the market."}],
            "temperature": 0.7,
            "api_base": srv.base_url + "/v1",
            "api_key": "sk-fake",
            "stream": False,
        }

        def task_thread() -> None:  # as crewai.task.Task.execute_async starts one
            ctx = contextvars.copy_context()
            t = threading.Thread(
                daemon=True, target=ctx.run, args=(litellm.completion,), kwargs=params
            )
            t.start()
            t.join()

        with tm.track("crew"):
            with tm.track("researcher"):
                litellm.completion(**params)
            with tm.track("writer"):
                stream = {**params, "stream": True, "stream_options": {"include_usage": True}}
                chunks = list(litellm.completion(**stream))
            with tm.track("async_task"):
                task_thread()
        assert len(srv.requests) == 3
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Done."
    rep = tm.report()
    for name in ("researcher", "writer", "async_task"):
        u = rep.node("crew", name).usage
        assert (u.calls, u.input_tokens, u.output_tokens, u.estimated_calls) == (1, 120, 30, 0)
    assert rep.node("crew").usage.calls == 3
