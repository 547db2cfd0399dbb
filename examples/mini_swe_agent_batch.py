"""mini-swe-agent: a batch of tasks, each agent run in its own scope.

Run: python examples/mini_swe_agent_batch.py (offline: LiteLLM answers with mock responses;
the agent runs its one command, an echo, in a local shell).
Guide: docs/mini-swe-agent.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")  # no banner on import

import yaml
from minisweagent import package_dir
from minisweagent.agents.default import DefaultAgent
from minisweagent.environments.local import LocalEnvironment
from minisweagent.models.litellm_textbased_model import LitellmTextbasedModel

import tokenmeter as tm

# The reply of every step: the command that ends the run.
SUBMIT = "Done.\n\n```mswea_bash_command\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\n```"
CONFIG = yaml.safe_load((package_dir / "config" / "mini_textbased.yaml").read_text())


def solve(task: str) -> str:
    # model_kwargs go to litellm.completion as they are.
    model = LitellmTextbasedModel(
        model_name="openai/gpt-4o-mini",
        model_kwargs={"api_key": "sk-offline", "mock_response": SUBMIT},
    )
    agent = DefaultAgent(model, LocalEnvironment(), **CONFIG["agent"])
    with tm.track("task", task=task):  # the attribute lands on each call record
        result = agent.run(task)
    return str(result["exit_status"])


def main() -> None:
    tasks = ["Fix the typo in README", "Add a test for parse()", "Bump the version"]
    with tm.track("batch"):
        statuses = [solve(task) for task in tasks]
    assert statuses == ["Submitted"] * 3

    rep = tm.report()
    rep.print()
    node = rep.node("batch", "task")
    print(
        f"{node.entries} tasks: {node.usage.calls} calls, {node.usage.total_tokens} tokens, "
        f"${node.usage.cost_usd:.6f}; per task ${node.usage.cost_usd / node.entries:.6f}"
    )
    assert (node.entries, node.usage.calls) == (3, 3)


if __name__ == "__main__":
    main()
