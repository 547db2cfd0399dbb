"""Budgets at run time: limits on scopes, checked before each LiteLLM call starts.

Runs offline: every call uses LiteLLM's ``mock_response=``, so no API key is
needed. A mock text answer reports 10 prompt and 20 completion tokens; with
gpt-4o-mini's price ($0.15 / $0.60 per million tokens) each call costs $0.0000135.

    .venv/bin/python examples/budgets.py
"""

from __future__ import annotations

import logging
import os
import sys
import threading

# LiteLLM's bundled price map: no download at import, and the same numbers every run.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

import tokenmeter as tm

logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s")


def ask(question: str, model: str = "gpt-4o-mini") -> str:
    """One chat call; the mock answer stands in for the model's."""
    response = litellm.completion(
        model=model,
        messages=[{"role": "user", "content": question}],
        mock_response=f"an answer to {question!r}",
    )
    return str(response.choices[0].message.content)


# 1. A call that would start once a limit is reached is refused before it starts.
with tm.track("planner", max_calls=3):
    for step in range(5):
        try:
            ask(f"step {step}")
        except tm.BudgetExceeded as e:
            print(f"refused: {e}")
            print(f"  path={e.path} kind={e.kind} limit={e.limit} spent={e.spent}")
            break

# 2. Nested budgets all hold: the child's calls count against its parent.
with tm.track("pipeline", max_tokens=90), tm.track("research", max_tokens=1_000):
    ask("what changed?")  # starts at 0 tokens, ends at 30
    ask("why?")  # starts at 30
    ask("since when?")  # starts at 60, under the parent's 90; ends at 90
    try:
        ask("anything else?")
    except tm.BudgetExceeded as e:
        print(f"refused by the parent: {e}")

# 3. on_exceed="warn" logs a warning on the "tokenmeter" logger; the call goes ahead.
with tm.track("nightly_report", max_cost_usd=0.00002, on_exceed="warn"):
    ask("summarize the day")  # starts at $0
    ask("and the week")  # starts at $0.0000135, under the limit
    ask("and the month")  # starts at $0.000027, over it: a warning, then the call


# 4. A callback decides. Returning lets the call go ahead (raising would refuse it);
#    here it switches the calls after this one to a cheaper model.
class Router:
    """Picks the model for the next call; the budget callback downgrades it."""

    def __init__(self) -> None:
        self.model = "gpt-4o"

    def on_exceed(self, exc: tm.BudgetExceeded) -> None:
        if self.model != "gpt-4o-mini":
            print(f"budget reached ({exc.kind}={exc.limit}): switching to gpt-4o-mini")
            self.model = "gpt-4o-mini"


router = Router()
with tm.track("drafts", max_cost_usd=0.0004, on_exceed=router.on_exceed):
    for i in range(4):
        ask(f"draft {i}", model=router.model)

# 5. max_calls is exact under concurrency: 20 threads race for 7 calls.
refused = []


def worker() -> None:
    try:
        ask("parallel question")
    except tm.BudgetExceeded:
        refused.append(1)


with tm.track("fan_out", max_calls=7) as fan_out:
    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
print(f"fan_out: {fan_out.usage.calls} calls made, {len(refused)} refused")

# 6. Manual records count too (they already happened, so they never raise).
with tm.track("offline_batch", max_tokens=1_000):
    tm.record(model="gpt-4o-mini", input_tokens=900, output_tokens=300)
    try:
        ask("one more?")
    except tm.BudgetExceeded as e:
        print(f"refused after a manual record: {e}")

print()
tm.report().print(detailed=True)
