"""The `make demo` pipeline: a multi-agent run and a data pipeline, metered by tokenmeter.

Runs offline on LiteLLM mock responses (no API key). A main agent on gpt-4o
delegates through a tool to two sub-agents on other models: a researcher on
Claude with cached prompt tokens and a critic on o3-mini with reasoning tokens.
Then a data pipeline of `@tm.tracked(module=..., operation=...)` stages runs over
25 samples on a thread pool. The report is printed and written to usage.json.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm
from litellm import ModelResponse, Usage

import tokenmeter as tm

SAMPLES = 25


def reply(model: str, text: str, **usage: Any) -> ModelResponse:
    """A mock response carrying exactly this usage (what a provider would report)."""
    return ModelResponse(
        model=model,
        choices=[{"message": {"role": "assistant", "content": text}}],
        usage=Usage(**usage),
    )


def tool_call(model: str, calls: list[tuple[str, dict[str, str]]], **usage: Any) -> ModelResponse:
    """A mock response in which the model calls tools."""
    return ModelResponse(
        model=model,
        choices=[
            {
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
                "finish_reason": "tool_calls",
            }
        ],
        usage=Usage(**usage),
    )


# -- the agents -----------------------------------------------------------------------


@tm.tracked("researcher", role="sub_agent")
def researcher(task: str) -> str:
    """A sub-agent on Claude: its long system prompt is read from the prompt cache."""
    notes = []
    for step in ("search", "summarise"):
        r = litellm.completion(
            model="anthropic/claude-sonnet-4-5",
            messages=[
                {"role": "system", "content": "long research brief"},
                {"role": "user", "content": f"{step}: {task}"},
            ],
            mock_response=reply(
                "claude-sonnet-4-5",
                f"{step} done",
                prompt_tokens=2400,
                completion_tokens=300,
                cache_read_input_tokens=2000,
            ),
        )
        notes.append(r.choices[0].message.content)
    return "; ".join(notes)


@tm.tracked("critic", role="sub_agent")
def critic(draft: str) -> str:
    """A sub-agent on a reasoning model: most of its output is reasoning tokens."""
    r = litellm.completion(
        model="o3-mini",
        messages=[{"role": "user", "content": f"critique: {draft}"}],
        mock_response=reply(
            "o3-mini",
            "looks right",
            prompt_tokens=900,
            completion_tokens=1500,
            completion_tokens_details={"reasoning_tokens": 1200},
        ),
    )
    return str(r.choices[0].message.content)


TOOLS = {"research": researcher, "critique": critic}


def main_agent(question: str) -> str:
    """The main agent on gpt-4o: plans, delegates through tools, then answers."""
    with tm.track("main_agent", model="gpt-4o"):
        messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
        plan = litellm.completion(
            model="gpt-4o",
            messages=messages,
            mock_response=tool_call(
                "gpt-4o",
                [("research", {"task": question}), ("critique", {"draft": "first draft"})],
                prompt_tokens=1200,
                completion_tokens=150,
            ),
        )
        for call in plan.choices[0].message.tool_calls:
            args = json.loads(call.function.arguments)
            result = TOOLS[call.function.name](**args)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        answer = litellm.completion(
            model="gpt-4o",
            messages=messages,
            mock_response=reply("gpt-4o", "the answer", prompt_tokens=1800, completion_tokens=400),
        )
        return str(answer.choices[0].message.content)


# -- the data pipeline ----------------------------------------------------------------


@tm.tracked(module="persona_formulation", operation="formulate_prompt")
def formulate(sample: int) -> str:
    r = litellm.completion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"persona {sample}"}],
        mock_response=reply("gpt-4o-mini", "persona", prompt_tokens=300, completion_tokens=450),
    )
    return str(r.choices[0].message.content)


@tm.tracked(module="query_generation", operation="generate_query")
def generate_query(persona: str) -> str:
    r = litellm.completion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": persona}],
        mock_response=reply("gpt-4o-mini", "query", prompt_tokens=1700, completion_tokens=90),
    )
    return str(r.choices[0].message.content)


@tm.tracked(module="interaction_generation", operation="simulate_turn")
def simulate(query: str, turns: int = 3) -> None:
    for _ in range(turns):
        litellm.completion(
            model="gpt-4o",
            messages=[{"role": "user", "content": query}],
            mock_response=reply("gpt-4o", "turn", prompt_tokens=1800, completion_tokens=380),
        )


def run_sample(i: int) -> None:
    with tm.track("sample", sample_id=i):
        simulate(generate_query(formulate(i)))


def main() -> int:
    meter = tm.Meter(keep_records=True)
    with meter.track("demo"):
        main_agent("Which of our prompts costs the most?")
        with tm.track("pipeline"), ThreadPoolExecutor(max_workers=4) as pool:
            # Threads inherit the scope they were started in: no code needed here.
            list(pool.map(run_sample, range(SAMPLES)))

    rep = meter.report()
    rep.print(detailed=True)

    print("\nby model:")
    for model, u in rep.by_model().items():
        print(f"  {model:<22} {u.calls:>4} calls {u.total_tokens:>9,} tokens  ${u.cost_usd:.4f}")
    print("by provider:")
    for provider, u in rep.by_provider().items():
        print(f"  {provider:<22} {u.calls:>4} calls {u.total_tokens:>9,} tokens  ${u.cost_usd:.4f}")
    print("by module:")
    total = rep.total
    for module, u in rep.by_module().items():
        share = 100 * u.cost_usd / total.cost_usd if total.cost_usd else 0.0
        print(f"  {module:<22} {u.calls:>4} calls  ${u.cost_usd:.4f}  {share:5.1f}% of cost")

    agent = rep.node("demo", "main_agent")
    print(
        f"\nmain_agent: own ${agent.self_usage.cost_usd:.4f}, "
        f"inclusive ${agent.usage.cost_usd:.4f} (its sub-agents included)"
    )
    sample = rep.node("demo", "pipeline", "sample")
    print(sample.project(1000).describe("samples"))

    rep.save("usage.json", include_records=True)
    print(f"\nwrote usage.json ({len(rep.records)} call records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
