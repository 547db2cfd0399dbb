"""tokenmeter.integrations.tinyagent: agent runs and tool calls as scopes.

The first half drives the callback the way TinyAgent calls it, with stand-in
agents; the second half runs the real ``tinyagent-py`` package (skipped when it
is not installed) on LiteLLM mock responses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

import tokenmeter as tm
from tokenmeter.integrations.tinyagent import TokenmeterCallback

pytestmark = [
    # Raised inside tinyagent-py's dependencies (mcp's TypedDicts) and its TokenTracker.
    pytest.mark.filterwarnings("ignore::UserWarning:pydantic._internal.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:tinyagent.*"),
]


class FakeAgent:
    """Stands in for a TinyAgent: the callback only looks at its identity and class."""


def tool_call(name: str, call_id: str = "call_1") -> Any:
    """A tool call shaped like LiteLLM's (``.id``, ``.function.name``)."""
    return SimpleNamespace(id=call_id, function=SimpleNamespace(name=name, arguments="{}"))


def paths() -> dict[tuple[str, ...], tuple[int, int]]:
    """Every scope of the default meter: path -> (entries, own calls)."""
    return {n.path: (n.entries, n.self_usage.calls) for n in tm.report().walk() if n.path}


def llm_call(tokens: int) -> None:
    """One manual call with ``tokens`` input tokens on the current scope."""
    tm.record(model="gpt-4o-mini", input_tokens=tokens, output_tokens=0, cost_usd=0.0)


# -- the callback protocol, with stand-in agents ---------------------------------------


def test_agent_run_is_a_scope() -> None:
    """agent_start enters a scope named by the callback, agent_end leaves it."""
    cb, agent = TokenmeterCallback("main_agent"), FakeAgent()
    cb("agent_start", agent, user_input="hi")
    assert tm.current().path == ("main_agent",)
    llm_call(10)
    cb("agent_end", agent, result="done")
    assert tm.current().path == ()
    assert paths() == {("main_agent",): (1, 1)}


def test_default_scope_name_is_the_agent_class() -> None:
    """Without a name the scope is named after the agent's class."""
    cb, agent = TokenmeterCallback(), FakeAgent()
    cb("agent_start", agent)
    cb("agent_end", agent)
    assert paths() == {("FakeAgent",): (1, 0)}


def test_tool_calls_are_child_scopes() -> None:
    """tool_start/tool_end make a scope named after the tool, under the agent's."""
    cb, agent = TokenmeterCallback("main_agent"), FakeAgent()
    cb("agent_start", agent)
    call = tool_call("search")
    cb("tool_start", agent, tool_call=call)
    assert tm.current().path == ("main_agent", "search")
    llm_call(5)
    cb("tool_end", agent, tool_call=call, result="found")
    assert tm.current().path == ("main_agent",)
    cb("agent_end", agent)
    assert paths() == {("main_agent",): (1, 0), ("main_agent", "search"): (1, 1)}


def test_dict_shaped_tool_calls_are_understood() -> None:
    """A tool call given as a dict ({'function': {'name': ...}}) is a scope too."""
    cb, agent = TokenmeterCallback("a"), FakeAgent()
    call = {"id": "c1", "function": {"name": "lookup", "arguments": "{}"}}
    cb("agent_start", agent)
    cb("tool_start", agent, tool_call=call)
    assert tm.current().path == ("a", "lookup")
    cb("tool_end", agent, tool_call=call)
    cb("agent_end", agent)
    assert tm.current().path == ()


def test_control_tools_get_no_scope() -> None:
    """final_answer, ask_question and notify_user are TinyAgent's loop control: no scope."""
    cb, agent = TokenmeterCallback("a"), FakeAgent()
    cb("agent_start", agent)
    for name in ("final_answer", "ask_question", "notify_user"):
        call = tool_call(name)
        cb("tool_start", agent, tool_call=call)
        assert tm.current().path == ("a",)
        cb("tool_end", agent, tool_call=call)
    cb("agent_end", agent)
    assert paths() == {("a",): (1, 0)}


def test_tools_false_opens_no_tool_scopes() -> None:
    """With tools=False a tool's calls land on the agent's scope."""
    cb, agent = TokenmeterCallback("a", tools=False), FakeAgent()
    cb("agent_start", agent)
    call = tool_call("search")
    cb("tool_start", agent, tool_call=call)
    llm_call(3)
    cb("tool_end", agent, tool_call=call)
    cb("agent_end", agent)
    assert paths() == {("a",): (1, 1)}


def test_other_events_are_ignored() -> None:
    """llm_start (a positional dict), llm_end, message_add and unknown events change nothing."""
    cb, agent = TokenmeterCallback("a"), FakeAgent()
    cb("llm_start", agent, {"messages": [], "tools": []})
    cb("llm_end", agent, response=None)
    cb("message_add", agent, message={"role": "user"})
    cb("agent_cleanup", agent)
    assert tm.current().path == ()
    assert paths() == {}


def test_unmatched_end_events_are_ignored() -> None:
    """agent_end or tool_end with nothing open (callback added mid-run) changes nothing."""
    cb, agent = TokenmeterCallback("a"), FakeAgent()
    cb("tool_end", agent, tool_call=tool_call("x"))
    cb("agent_end", agent, result="r")
    assert tm.current().path == ()


def test_sub_agent_with_its_own_callback_nests_under_the_tool() -> None:
    """A sub-agent with its own callback is a scope under the main agent's tool scope."""
    main_cb, sub_cb = TokenmeterCallback("main_agent"), TokenmeterCallback("researcher")
    main, sub = FakeAgent(), FakeAgent()
    main_cb("agent_start", main)
    call = tool_call("research")
    main_cb("tool_start", main, tool_call=call)
    sub_cb("agent_start", sub)
    llm_call(7)
    sub_cb("agent_end", sub)
    main_cb("tool_end", main, tool_call=call)
    main_cb("agent_end", main)
    assert paths() == {
        ("main_agent",): (1, 0),
        ("main_agent", "research"): (1, 0),
        ("main_agent", "research", "researcher"): (1, 1),
    }


def test_shared_callback_does_not_repeat_itself() -> None:
    """A callback shared with a sub-agent (as SubagentConfig does) records it on the tool scope."""
    cb, main, sub = TokenmeterCallback("main_agent"), FakeAgent(), FakeAgent()
    cb("agent_start", main)
    call = tool_call("research")
    cb("tool_start", main, tool_call=call)
    cb("agent_start", sub)
    assert tm.current().path == ("main_agent", "research")
    llm_call(7)
    inner = tool_call("search", "call_2")
    cb("tool_start", sub, tool_call=inner)
    assert tm.current().path == ("main_agent", "research", "search")
    cb("tool_end", sub, tool_call=inner)
    cb("agent_end", sub)
    assert tm.current().path == ("main_agent", "research")
    cb("tool_end", main, tool_call=call)
    cb("agent_end", main)
    assert tm.current().path == ()
    assert paths() == {
        ("main_agent",): (1, 0),
        ("main_agent", "research"): (1, 1),
        ("main_agent", "research", "search"): (1, 0),
    }


async def test_concurrent_runs_keep_their_own_scopes() -> None:
    """Two agents run in parallel tasks with one callback: each call lands on its own agent."""
    cb = TokenmeterCallback()

    class Planner(FakeAgent):
        pass

    class Critic(FakeAgent):
        pass

    async def run(agent: FakeAgent, tokens: int) -> tuple[str, ...]:
        cb("agent_start", agent)
        for _ in range(3):
            await asyncio.sleep(0)
            llm_call(tokens)
        seen = tm.current().path
        cb("agent_end", agent)
        return seen

    seen = await asyncio.gather(run(Planner(), 1), run(Critic(), 100), run(Planner(), 10))
    assert list(seen) == [("Planner",), ("Critic",), ("Planner",)]
    assert tm.current().path == ()
    rep = tm.report()
    assert (rep.node("Planner").entries, rep.node("Planner").usage.input_tokens) == (2, 33)
    assert (rep.node("Critic").entries, rep.node("Critic").usage.input_tokens) == (1, 300)


async def test_parallel_tool_calls_are_separate_entries() -> None:
    """Two tool calls run concurrently (as TinyAgent gathers them) are two entries of one node."""
    cb, agent = TokenmeterCallback("a"), FakeAgent()
    cb("agent_start", agent)

    async def run_tool(call_id: str, tokens: int) -> tuple[str, ...]:
        call = tool_call("search", call_id)
        cb("tool_start", agent, tool_call=call)
        await asyncio.sleep(0)
        llm_call(tokens)
        seen = tm.current().path
        cb("tool_end", agent, tool_call=call)
        return seen

    seen = await asyncio.gather(run_tool("c1", 4), run_tool("c2", 6))
    assert tm.current().path == ("a",)
    cb("agent_end", agent)
    assert list(seen) == [("a", "search"), ("a", "search")]
    assert paths() == {("a",): (1, 0), ("a", "search"): (2, 2)}


def test_cancelled_run_leaks_until_unwind() -> None:
    """A run that never sent agent_end stays current; unwind() leaves it and what is inside."""
    cb, agent = TokenmeterCallback("a"), FakeAgent()
    cb("agent_start", agent)
    cb("tool_start", agent, tool_call=tool_call("slow"))
    assert tm.current().path == ("a", "slow")
    cb.unwind()
    assert tm.current().path == ()
    cb.unwind()
    assert tm.current().path == ()


def test_next_run_of_the_agent_closes_a_cancelled_one() -> None:
    """agent_start for an agent whose last run never ended closes that run first: no nesting."""
    cb, agent = TokenmeterCallback("a"), FakeAgent()
    cb("agent_start", agent)
    cb("agent_start", agent)
    assert tm.current().path == ("a",)
    cb("agent_end", agent)
    assert tm.current().path == ()
    assert paths() == {("a",): (2, 0)}


def test_enclosing_track_ends_a_leaked_run() -> None:
    """Leaving an enclosing tm.track block drops a leaked run; a later run starts at the top."""
    cb, agent = TokenmeterCallback("a"), FakeAgent()
    with tm.track("job"):
        cb("agent_start", agent)
        assert tm.current().path == ("job", "a")
    assert tm.current().path == ()
    cb("agent_start", agent)
    assert tm.current().path == ("a",)
    cb("agent_end", agent)
    assert tm.current().path == ()
    assert paths() == {("job",): (1, 0), ("job", "a"): (1, 0), ("a",): (1, 0)}


def test_agent_end_closes_tool_scopes_left_open() -> None:
    """agent_end also leaves tool scopes of that run that never got tool_end."""
    cb, agent = TokenmeterCallback("a"), FakeAgent()
    cb("agent_start", agent)
    cb("tool_start", agent, tool_call=tool_call("t1"))
    cb("agent_end", agent)
    assert tm.current().path == ()


def test_track_options_apply_to_the_agent_scope() -> None:
    """module=, operation= and attributes given to the callback are on each call of the run."""
    cb, agent = (
        TokenmeterCallback("a", module="support", operation="triage", team="search"),
        FakeAgent(),
    )
    cb("agent_start", agent)
    rec = tm.record(model="gpt-4o-mini", input_tokens=1, output_tokens=1, cost_usd=0.0)
    cb("agent_end", agent)
    assert (rec.module, rec.operation, dict(rec.attributes)) == (
        "support",
        "triage",
        {"team": "search"},
    )


def test_meter_option_records_on_that_meter() -> None:
    """meter= puts the agent's scopes on an isolated meter; the default meter stays empty."""
    meter = tm.Meter()
    cb, agent = TokenmeterCallback("a", meter=meter), FakeAgent()
    cb("agent_start", agent)
    call = tool_call("search")
    cb("tool_start", agent, tool_call=call)
    meter.record(model="gpt-4o-mini", input_tokens=2, output_tokens=1, cost_usd=0.0)
    cb("tool_end", agent, tool_call=call)
    cb("agent_end", agent)
    assert meter.report().node("a", "search").self_usage.calls == 1
    assert tm.report().total == tm.Usage()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("",), {}, r"name must be a non-empty string or None, got ''"),
        ((7,), {}, r"name must be a non-empty string or None, got 7"),
        (("a",), {"max_tokens": -1}, r"max_tokens must be a non-negative integer or None, got -1"),
    ],
)
def test_bad_arguments_fail_at_construction(args: Any, kwargs: Any, message: str) -> None:
    """A bad name or budget raises ValueError when the callback is made, not mid-run."""
    with pytest.raises(ValueError, match=message):
        TokenmeterCallback(*args, **kwargs)


def test_importing_the_integration_is_light() -> None:
    """import tokenmeter.integrations.tinyagent imports neither tinyagent nor litellm."""
    code = (
        "import sys, tokenmeter.integrations.tinyagent\n"
        "print(sorted(m for m in ('litellm', 'tinyagent') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert out.stdout.strip() == "[]"


# -- the real tinyagent-py, on LiteLLM mock responses ----------------------------------


@pytest.fixture
def tinyagent(caplog: pytest.LogCaptureFixture) -> Iterator[ModuleType]:
    """The tinyagent package (skipped without it), offline, with its side effects undone.

    TinyAgent loads tiktoken's o200k_base on construction: LiteLLM's bundled copy is
    used. It also sets ``litellm.drop_params = True`` globally: restored afterwards.
    Errors TinyAgent swallows from callbacks fail the test.
    """
    import litellm

    drop_params = litellm.drop_params
    module = pytest.importorskip("tinyagent")
    import litellm.litellm_core_utils.default_encoding  # offline tiktoken files

    caplog.set_level(logging.ERROR)
    yield module
    litellm.drop_params = drop_params
    errors = [r.getMessage() for r in caplog.records if "Error in callback" in r.getMessage()]
    assert errors == []


def text_reply(content: str, input_tokens: int, output_tokens: int, model: str) -> Any:
    """A LiteLLM ModelResponse with a text answer and these token counts."""
    from litellm import ModelResponse

    return ModelResponse(
        model=model,
        choices=[
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
        usage={
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    )


def tool_reply(input_tokens: int, output_tokens: int, model: str, *calls: tuple[str, Any]) -> Any:
    """A LiteLLM ModelResponse asking for these (tool name, arguments) calls."""
    from litellm import ModelResponse

    return ModelResponse(
        model=model,
        choices=[
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{i}",
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(args)},
                        }
                        for i, (name, args) in enumerate(calls)
                    ],
                },
            }
        ],
        usage={
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    )


class Script:
    """A TinyAgent callback that gives the model's next answer as LiteLLM's mock_response.

    TinyAgent passes ``model_kwargs`` to every ``litellm.acompletion`` call and runs
    ``llm_start`` callbacks just before it, so each call gets the next reply.
    """

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)

    def __call__(self, event_name: str, agent: Any, *args: Any, **kwargs: Any) -> None:
        if event_name == "llm_start":
            agent.model_kwargs["mock_response"] = self.replies.pop(0)


def make_agent(tinyagent: ModuleType, model: str, *callbacks: Any, **kwargs: Any) -> Any:
    """A TinyAgent on ``model`` with these callbacks, hermetic (no AGENTS.md, no TodoWrite)."""
    agent = tinyagent.TinyAgent(
        model=model,
        api_key="sk-fake",
        enable_custom_instruction=False,
        enable_todo_write=False,
        **kwargs,
    )
    for cb in callbacks:
        agent.add_callback(cb)
    return agent


async def test_main_agent_and_sub_agent_tool_form_a_tree(tinyagent: ModuleType) -> None:
    """A main agent calling a sub-agent through as_tool() is main_agent/research/researcher."""
    sub = make_agent(
        tinyagent,
        "anthropic/claude-haiku-4-5",
        Script(text_reply("Paris", 50, 5, "claude-haiku-4-5")),
        TokenmeterCallback("researcher"),
    )
    main = make_agent(
        tinyagent,
        "gpt-4o",
        Script(
            tool_reply(100, 20, "gpt-4o", ("research", {"query": "capital of France?"})),
            text_reply("It is Paris.", 150, 10, "gpt-4o"),
        ),
        TokenmeterCallback("main_agent"),
    )
    main.add_tool(sub.as_tool(name="research", description="Research a question"))

    assert await main.run("What is the capital of France?") == "It is Paris."

    assert tm.current().path == ()
    assert paths() == {
        ("main_agent",): (1, 2),
        ("main_agent", "research"): (1, 0),
        ("main_agent", "research", "researcher"): (1, 1),
    }
    rep = tm.report()
    top = rep.node("main_agent")
    assert top.self_usage == tm.Usage(
        calls=2, input_tokens=250, output_tokens=30, cost_usd=0.000925
    )
    assert top.usage == tm.Usage(calls=3, input_tokens=300, output_tokens=35, cost_usd=0.001)
    sub_usage = rep.node("main_agent", "research", "researcher").usage
    assert sub_usage == tm.Usage(calls=1, input_tokens=50, output_tokens=5, cost_usd=0.000075)
    assert {m: u.calls for m, u in rep.by_model().items()} == {"gpt-4o": 2, "claude-haiku-4-5": 1}
    assert {p: u.calls for p, u in rep.by_provider().items()} == {"openai": 2, "anthropic": 1}


async def test_shared_callback_and_parallel_sub_agent_calls(tinyagent: ModuleType) -> None:
    """One callback on both agents, two parallel research calls: main_agent/research, 2 entries."""
    cb = TokenmeterCallback("main_agent")
    sub = make_agent(
        tinyagent,
        "gpt-4o-mini",
        Script(text_reply("A", 50, 5, "gpt-4o-mini"), text_reply("B", 40, 4, "gpt-4o-mini")),
        cb,
    )
    main = make_agent(
        tinyagent,
        "gpt-4o",
        Script(
            tool_reply(
                100, 20, "gpt-4o", ("research", {"query": "a"}), ("research", {"query": "b"})
            ),
            text_reply("done", 150, 10, "gpt-4o"),
        ),
        cb,
    )
    main.add_tool(sub.as_tool(name="research", description="Research a question"))

    assert await main.run("two questions") == "done"

    assert tm.current().path == ()
    assert paths() == {("main_agent",): (1, 2), ("main_agent", "research"): (2, 2)}
    research = tm.report().node("main_agent", "research").usage
    assert (research.input_tokens, research.output_tokens) == (90, 9)


async def test_agents_in_parallel_tasks(tinyagent: ModuleType) -> None:
    """Two agents run with asyncio.gather each get their own scope and calls."""
    a = make_agent(
        tinyagent, "gpt-4o", Script(text_reply("A", 10, 1, "gpt-4o")), TokenmeterCallback("a")
    )
    b = make_agent(
        tinyagent,
        "gpt-4o-mini",
        Script(text_reply("B", 20, 2, "gpt-4o-mini")),
        TokenmeterCallback("b"),
    )

    assert list(await asyncio.gather(a.run("x"), b.run("y"))) == ["A", "B"]

    rep = tm.report()
    assert (rep.node("a").usage.calls, rep.node("a").usage.input_tokens) == (1, 10)
    assert (rep.node("b").usage.calls, rep.node("b").usage.input_tokens) == (1, 20)
    assert rep.total.calls == 2


async def test_llm_error_still_closes_the_scope(tinyagent: ModuleType) -> None:
    """TinyAgent turns an LLM error into an 'Error: ...' result and still sends agent_end."""
    agent = make_agent(
        tinyagent,
        "gpt-4o",
        TokenmeterCallback("a"),
        model_kwargs={"mock_response": Exception("boom")},
        retry_config={"max_retries": 0},
    )

    result = await agent.run("x")

    assert result == (
        "Error: litellm.InternalServerError: InternalServerError: OpenAIException - "
        "litellm.MockException: boom"
    )
    assert tm.current().path == ()
    node = tm.report().node("a")
    assert node.entries == 1
    assert node.usage == tm.Usage(calls=1, failed_calls=1)


async def test_budget_on_the_agent_scope_stops_the_run(tinyagent: ModuleType) -> None:
    """max_calls=1 on the callback: the second LLM call is refused, the run ends with an error."""
    agent = make_agent(
        tinyagent,
        "gpt-4o",
        Script(tool_reply(100, 20, "gpt-4o", ("lookup", {})), text_reply("never", 1, 1, "gpt-4o")),
        TokenmeterCallback("a", max_calls=1),
        retry_config={"max_retries": 0},
    )

    @tinyagent.tool(name="lookup", description="Look something up")  # type: ignore[untyped-decorator]
    async def lookup() -> str:
        return "42"

    agent.add_tool(lookup)

    result = await agent.run("x")

    assert result.startswith("Error: token budget exceeded in scope 'a': max_calls=1")
    assert tm.current().path == ()
    assert paths() == {("a",): (1, 1), ("a", "lookup"): (1, 0)}


async def test_cancelled_run_is_unwound(tinyagent: ModuleType) -> None:
    """A run cancelled in a slow tool sends no agent_end: its scope stays current until unwind()."""
    cb = TokenmeterCallback("a")

    @tinyagent.tool(name="slow", description="A slow tool")  # type: ignore[untyped-decorator]
    async def slow() -> str:
        await asyncio.sleep(30)
        return "late"

    agent = make_agent(tinyagent, "gpt-4o", Script(tool_reply(100, 20, "gpt-4o", ("slow", {}))), cb)
    agent.add_tool(slow)
    started = asyncio.Event()

    async def body() -> tuple[tuple[str, ...], tuple[str, ...]]:
        started.set()
        try:
            await agent.run("x")
        except asyncio.CancelledError:
            leaked = tm.current().path
            cb.unwind()
            return leaked, tm.current().path
        raise AssertionError("the run was not cancelled")

    task = asyncio.ensure_future(body())
    await started.wait()
    for _ in range(500):
        if ("a", "slow") in paths():
            break
        await asyncio.sleep(0.01)
    task.cancel()

    assert await task == (("a",), ())
    assert tm.current().path == ()
    assert paths() == {("a",): (1, 1), ("a", "slow"): (1, 0)}


async def test_token_tracker_and_tokenmeter_agree(tinyagent: ModuleType) -> None:
    """TinyAgent's TokenTracker (parent/child) and tokenmeter count the same calls and tokens."""
    token_tracker = pytest.importorskip("tinyagent.hooks.token_tracker")
    main_tracker = token_tracker.TokenTracker(name="main_agent", enable_detailed_logging=False)
    sub_tracker = token_tracker.TokenTracker(
        name="researcher", parent_tracker=main_tracker, enable_detailed_logging=False
    )
    sub = make_agent(
        tinyagent,
        "anthropic/claude-haiku-4-5",
        Script(text_reply("Paris", 50, 5, "claude-haiku-4-5")),
        sub_tracker,
        TokenmeterCallback("researcher"),
    )
    main = make_agent(
        tinyagent,
        "gpt-4o",
        Script(
            tool_reply(100, 20, "gpt-4o", ("research", {"query": "q"})),
            text_reply("It is Paris.", 150, 10, "gpt-4o"),
        ),
        main_tracker,
        TokenmeterCallback("main_agent"),
    )
    main.add_tool(sub.as_tool(name="research", description="Research a question"))

    await main.run("What is the capital of France?")

    theirs = main_tracker.get_total_usage(include_children=True)
    ours = tm.report().node("main_agent").usage
    assert (theirs.call_count, theirs.prompt_tokens, theirs.completion_tokens) == (3, 300, 35)
    assert (ours.calls, ours.input_tokens, ours.output_tokens) == (3, 300, 35)
    assert sub_tracker.get_total_usage().prompt_tokens == 50
    assert tm.report().node("main_agent", "research", "researcher").usage.input_tokens == 50
