"""smolagents: a manager agent and its managed agent, each in its own scope.

Run: python examples/smolagents_team.py (offline: LiteLLM answers with mock responses).
Guide: docs/smolagents.md.
"""

from __future__ import annotations

from smolagents import CodeAgent, LiteLLMModel

import tokenmeter as tm


def model(model_id: str, reply: str) -> LiteLLMModel:
    # LiteLLMModel passes extra keyword arguments on to litellm.completion.
    return LiteLLMModel(model_id=model_id, api_key="sk-offline", mock_response=reply)


researcher = CodeAgent(
    tools=[],
    model=model("openai/gpt-4o-mini", "Look it up.\n<code>\nfinal_answer('Paris')\n</code>"),
    name="researcher",
    description="Finds facts.",
    verbosity_level=0,
)
manager = CodeAgent(
    tools=[],
    model=model(
        "openai/gpt-4o",
        "Ask the researcher.\n<code>\nfacts = researcher(task='Capital of France?')\n"
        "final_answer(facts)\n</code>",
    ),
    managed_agents=[researcher],
    verbosity_level=0,
)
# The manager calls researcher(task=...), which calls researcher.run: one scope per run.
researcher.run = tm.tracked("researcher")(researcher.run)


def main() -> None:
    with tm.track("manager"):
        for question in ("What is the capital of France?", "Where is the Eiffel Tower?"):
            answer = manager.run(question)
            assert "Paris" in str(answer)

    rep = tm.report()
    rep.print()
    team = rep.node("manager")
    own, research = team.self_usage, team.children["researcher"]
    print(f"manager: {team.usage.calls} calls, ${team.usage.cost_usd:.6f} in all")
    print(f"  its own model (gpt-4o): {own.calls} calls, ${own.cost_usd:.6f}")
    print(
        f"  researcher (gpt-4o-mini): {research.usage.calls} calls in "
        f"{research.entries} runs, ${research.usage.cost_usd:.6f}"
    )
    assert (own.calls, research.usage.calls, research.entries) == (2, 2, 2)


if __name__ == "__main__":
    main()
