"""A main agent that delegates through a tool to two sub-agents on other models.

The orchestrator (gpt-4o) answers its first turn with two tool calls to
``delegate``; each runs a sub-agent in its own scope: a researcher on Claude
Sonnet 4.5 whose long system prompt is written to Anthropic's prompt cache once
and read from it after, and a coder on o4-mini that spends most of its output on
reasoning. The orchestrator then writes the answer from the tool results.

Every call uses ``mock_response=litellm.ModelResponse(...)`` carrying an exact
``litellm.Usage``, so it runs offline and LiteLLM prices each call from its
bundled price map exactly as it would price a real response.

    .venv/bin/python examples/multi_agent.py
"""

from __future__ import annotations

import json
import os
from typing import Any

# LiteLLM's bundled price map: no download at import, and the same numbers every run.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

import tokenmeter as tm

ORCHESTRATOR = "gpt-4o"
RESEARCHER = "anthropic/claude-sonnet-4-5"
CODER = "o4-mini"


def reply(
    model: str,
    *,
    prompt: int,
    completion: int,
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    cache_read: int = 0,
    cache_write: int = 0,
    reasoning: int = 0,
) -> litellm.ModelResponse:
    """A mock answer carrying exactly this usage (prompt tokens include the cached ones)."""
    usage = litellm.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cache_read_input_tokens=cache_read or None,
        cache_creation_input_tokens=cache_write or None,
        completion_tokens_details={"reasoning_tokens": reasoning} if reasoning else None,
    )
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    finish = "tool_calls" if tool_calls else "stop"
    return litellm.ModelResponse(
        model=model.split("/")[-1],
        usage=usage,
        choices=[{"index": 0, "message": message, "finish_reason": finish}],
    )


def tool_call(call_id: str, agent: str, task: str) -> dict[str, Any]:
    """An OpenAI-style tool call to ``delegate(agent, task)``."""
    arguments = json.dumps({"agent": agent, "task": task})
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "delegate", "arguments": arguments},
    }


def researcher(task: str) -> str:
    """Two turns on Claude: the first writes the 2,500-token system prompt to the cache."""
    system = {"role": "system", "content": "You are a careful researcher. <long brief>"}
    first = litellm.completion(
        model=RESEARCHER,
        messages=[system, {"role": "user", "content": task}],
        mock_response=reply(
            RESEARCHER,
            prompt=2_600,
            completion=300,
            cache_write=2_500,
            content="Three sources agree on the 2024 numbers.",
        ),
    )
    notes = str(first.choices[0].message.content)
    second = litellm.completion(
        model=RESEARCHER,
        messages=[system, {"role": "user", "content": f"Summarise: {notes}"}],
        mock_response=reply(
            RESEARCHER,
            prompt=2_700,
            completion=200,
            cache_read=2_500,
            content="Revenue grew 12% in 2024.",
        ),
    )
    return str(second.choices[0].message.content)


def coder(task: str) -> str:
    """One turn on o4-mini: 1,100 of its 1,400 output tokens are reasoning."""
    response = litellm.completion(
        model=CODER,
        messages=[{"role": "user", "content": task}],
        mock_response=reply(
            CODER,
            prompt=900,
            completion=1_400,
            reasoning=1_100,
            content="def growth(a, b): return (b - a) / a",
        ),
    )
    return str(response.choices[0].message.content)


SUB_AGENTS = {"researcher": researcher, "coder": coder}


def delegate(agent: str, task: str) -> str:
    """The orchestrator's tool: run a sub-agent in its own scope, under the caller's."""
    with tm.track(agent, role="sub-agent"):
        return SUB_AGENTS[agent](task)


def orchestrator(goal: str) -> str:
    """Plan with tool calls, run them, then answer from their results."""
    with tm.track("orchestrator", role="main"):
        messages: list[dict[str, Any]] = [{"role": "user", "content": goal}]
        plan = litellm.completion(
            model=ORCHESTRATOR,
            messages=messages,
            mock_response=reply(
                ORCHESTRATOR,
                prompt=1_200,
                completion=80,
                tool_calls=[
                    tool_call("call_1", "researcher", "Find the 2024 revenue figures."),
                    tool_call("call_2", "coder", "Write a growth-rate function."),
                ],
            ),
        )
        turn = plan.choices[0].message
        messages.append(turn.model_dump())
        for call in turn.tool_calls:
            result = delegate(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        answer = litellm.completion(
            model=ORCHESTRATOR,
            messages=messages,
            mock_response=reply(
                ORCHESTRATOR,
                prompt=1_900,
                completion=250,
                content="Revenue grew 12%; growth() computes it.",
            ),
        )
        return str(answer.choices[0].message.content)


def main() -> None:
    answer = orchestrator("How fast did revenue grow, and give me code to compute it.")
    print(f"answer: {answer}\n")

    report = tm.report()
    report.print(detailed=True)

    main_agent = report.node("orchestrator")
    own, inclusive = main_agent.self_usage, main_agent.usage
    print("\norchestrator, own vs inclusive:")
    print(f"  own         calls={own.calls} tokens={own.total_tokens:>6,} ${own.cost_usd:.6f}")
    print(
        f"  inclusive   calls={inclusive.calls} tokens={inclusive.total_tokens:>6,} "
        f"${inclusive.cost_usd:.6f}"
    )
    print("sub-agents:")
    for name, child in main_agent.children.items():
        u = child.usage
        print(f"  {name:<11} calls={u.calls} tokens={u.total_tokens:>6,} ${u.cost_usd:.6f}")
        print(
            f"              input {u.input_tokens:,}: {u.cache_read_tokens:,} cache reads, "
            f"{u.cache_write_tokens:,} cache writes; output {u.output_tokens:,}: "
            f"{u.reasoning_tokens:,} reasoning"
        )

    print("\nby model:")
    for model, u in report.by_model().items():
        print(f"  {model:<20} calls={u.calls} tokens={u.total_tokens:>6,} ${u.cost_usd:.6f}")
    print("by provider:")
    for provider, u in report.by_provider().items():
        share = u.cost_usd / report.total.cost_usd
        print(f"  {provider:<20} calls={u.calls} ${u.cost_usd:.6f} ({share:.1%} of the cost)")


if __name__ == "__main__":
    main()
