"""A TinyAgent main agent and its sub-agents, as one tokenmeter tree.

The main agent (gpt-4o) has two sub-agents as tools, made with
``agent.as_tool()``: a researcher on Claude Haiku 4.5 and a fact-checker on
gpt-4o-mini. Its first answer calls both tools in parallel; the second writes
the reply. One ``TokenmeterCallback`` on the main agent is all the wiring: the
sub-agents' calls land on their tool calls' scopes, under the main agent. The
fact-checker also has its own callback, so it shows as a named node below its
tool.

Runs offline: each LLM call gets its answer through LiteLLM's
``mock_response``, which TinyAgent passes on from ``agent.model_kwargs``;
``script()`` sets it before each call.

    .venv/bin/python examples/tinyagent_tree.py
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

# LiteLLM's bundled price map: no download at import, and the same numbers every run.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm.litellm_core_utils.default_encoding  # noqa: F401 - offline: LiteLLM's tiktoken files
from litellm import ModelResponse
from tinyagent import TinyAgent

import tokenmeter as tm
from tokenmeter.integrations.tinyagent import TokenmeterCallback


def reply(
    model: str,
    input_tokens: int,
    output_tokens: int,
    text: str | None = None,
    tools: dict[str, dict[str, Any]] | None = None,
) -> ModelResponse:
    """A scripted answer: text, or calls of the named tools with their arguments."""
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for i, (name, args) in enumerate((tools or {}).items())
    ]
    message = {"role": "assistant", "content": text, "tool_calls": calls or None}
    usage = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens}
    return ModelResponse(model=model, choices=[{"index": 0, "message": message}], usage=usage)


def script(*replies: ModelResponse) -> Callable[..., None]:
    """A TinyAgent callback that gives each LLM call the next reply as its mock_response."""
    queue = list(replies)

    def on_event(event_name: str, agent: Any, *args: Any, **kwargs: Any) -> None:
        if event_name == "llm_start":
            agent.model_kwargs["mock_response"] = queue.pop(0)

    return on_event


def agent(model: str, *callbacks: Callable[..., Any]) -> TinyAgent:
    """A TinyAgent with these callbacks (its TodoWrite tool needs extra packages: off)."""
    a = TinyAgent(model=model, enable_todo_write=False)
    for cb in callbacks:
        a.add_callback(cb)
    return a


async def main() -> None:
    """Run the main agent once and print the tree, the breakdowns and the totals."""
    researcher = agent(
        "anthropic/claude-haiku-4-5",
        script(reply("claude-haiku-4-5", 420, 180, text="Lyon has 522,000 inhabitants.")),
    )
    checker = agent(
        "gpt-4o-mini",
        script(reply("gpt-4o-mini", 300, 40, text="Confirmed: 522,250 (2021 census).")),
        TokenmeterCallback("fact_checker"),
    )
    main_agent = agent(
        "gpt-4o",
        script(
            reply(
                "gpt-4o",
                900,
                60,
                tools={
                    "research": {"query": "population of Lyon"},
                    "check": {"query": "Lyon population, latest census"},
                },
            ),
            reply("gpt-4o", 1_400, 90, text="Lyon has about 522,000 inhabitants."),
        ),
        TokenmeterCallback("main_agent"),
    )
    main_agent.add_tool(researcher.as_tool(name="research", description="Research a question"))
    main_agent.add_tool(checker.as_tool(name="check", description="Check a fact"))

    answer = await main_agent.run("How many people live in Lyon?")

    report = tm.report()
    report.print(detailed=True)

    top = report.node("main_agent")
    print(f"\nanswer: {answer}")
    print(
        f"main_agent: {top.usage.calls} calls, {top.usage.total_tokens:,} tokens, "
        f"${top.usage.cost_usd:.6f} in all; its own calls: {top.self_usage.calls}, "
        f"${top.self_usage.cost_usd:.6f}"
    )
    print("by tool call:")
    for name, child in top.children.items():
        print(f"  {name:<10} calls={child.usage.calls} ${child.usage.cost_usd:.6f}")
    print("by provider:")
    for provider, usage in report.by_provider().items():
        print(f"  {provider:<10} calls={usage.calls} ${usage.cost_usd:.6f}")


if __name__ == "__main__":
    asyncio.run(main())
