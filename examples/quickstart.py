"""Quickstart: one scope, three LiteLLM calls, and the report.

Runs offline: every call uses LiteLLM's ``mock_response=``, so no API key is
needed. LiteLLM reports 10 prompt and 20 completion tokens for a mock text
answer, and prices it from its bundled price map.

    .venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

import os

# LiteLLM's bundled price map: no download at import, and the same numbers every run.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

import tokenmeter as tm


def ask(model: str, question: str, answer: str) -> str:
    """One chat call; the mock answer stands in for the model's."""
    response = litellm.completion(
        model=model,
        messages=[{"role": "user", "content": question}],
        mock_response=answer,
    )
    return str(response.choices[0].message.content)


with tm.track("release_notes") as scope:
    draft = ask("gpt-4o-mini", "Draft release notes for v2.3.", "v2.3 adds streaming.")
    review = ask("gpt-4o-mini", f"Review this draft: {draft}", "Mention the fix for #412.")
    final = ask("gpt-4o", f"Rewrite with the review: {review}", "v2.3: streaming, #412 fixed.")

# The report already holds all three calls: nothing to flush or wait for.
report = tm.report()
report.print(detailed=True)

usage = scope.usage
print()
print(f"final answer: {final}")
print(
    f"release_notes: {usage.calls} calls, {usage.input_tokens} input + "
    f"{usage.output_tokens} output = {usage.total_tokens} tokens, ${usage.cost_usd:.6f}"
)
for model, model_usage in report.by_model().items():
    print(f"  {model:<12} calls={model_usage.calls} ${model_usage.cost_usd:.6f}")
