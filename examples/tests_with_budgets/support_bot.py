"""A tiny support bot: the application code that test_support_bot.py checks.

Each answer makes two LiteLLM calls, a plan and a reply, each in its own scope.
The calls use ``mock_response=`` (no network, no API key) with exact token
counts, so the costs are the same on every run: with gpt-4o-mini's price
($0.15 / $0.60 per million input / output tokens) a plan costs $0.000042 and a
reply $0.000135.
"""

from __future__ import annotations

import litellm

import tokenmeter as tm

MODEL = "gpt-4o-mini"


def _complete(prompt: str, answer: str, input_tokens: int, output_tokens: int) -> str:
    """One chat call; the mock response stands in for the model's, token counts included."""
    mock = litellm.ModelResponse(
        model=MODEL,
        choices=[{"message": {"role": "assistant", "content": answer}}],
        usage=litellm.Usage(
            prompt_tokens=input_tokens,
            completion_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        ),
    )
    response = litellm.completion(
        model=MODEL, messages=[{"role": "user", "content": prompt}], mock_response=mock
    )
    return str(response.choices[0].message.content)


@tm.tracked("planner")
def plan(question: str) -> str:
    """Decide how to answer (120 input + 40 output tokens)."""
    return _complete(f"Plan an answer to: {question}", "1. find the doc 2. quote it", 120, 40)


@tm.tracked("writer")
def write(question: str, steps: str) -> str:
    """Write the answer (300 input + 150 output tokens)."""
    return _complete(
        f"Answer {question!r} following: {steps}", "See Settings > Security.", 300, 150
    )


def answer(question: str) -> str:
    """Plan, then write: two calls in the ``support_bot`` scope."""
    with tm.track("support_bot"):
        return write(question, plan(question))
