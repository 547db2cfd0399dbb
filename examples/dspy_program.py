"""DSPy: a program's LM calls attributed per module, through LiteLLM.

Run: python examples/dspy_program.py (offline: LiteLLM answers with mock responses).
Guide: docs/dspy.md.
"""

from __future__ import annotations

import dspy

import tokenmeter as tm

# In memory only, so each run starts cold (the default cache also persists on disk).
dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)


def lm(model: str, reply: str) -> dspy.LM:
    # engine="litellm": DSPy's default engine ("auto") sends the requests it can
    # through DSPy's own client, past LiteLLM, where tokenmeter does not see them.
    return dspy.LM(model, engine="litellm", api_key="sk-offline", mock_response=reply)


answer_lm = lm("openai/gpt-4o-mini", "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]")
judge_lm = lm("openai/gpt-4o", "[[ ## verdict ## ]]\ncorrect\n\n[[ ## completed ## ]]")


class CheckedQA(dspy.Module):
    """Answer on a small model, then have a larger one judge the answer."""

    def __init__(self) -> None:
        self.answer = dspy.Predict("question -> answer")
        self.judge = dspy.Predict("question, answer -> verdict")

    @tm.tracked("checked_qa")
    def forward(self, question: str) -> dspy.Prediction:
        with tm.track("answer"):
            answer = self.answer(question=question).answer
        with tm.track("judge"), dspy.context(lm=judge_lm):
            verdict = self.judge(question=question, answer=answer).verdict
        return dspy.Prediction(answer=answer, verdict=verdict)


def main() -> None:
    dspy.configure(lm=answer_lm)
    program = CheckedQA()
    questions = ["Capital of France?", "Capital of France?", "Where is the Louvre?"]
    with tm.track("eval"):
        results = [program(question=q) for q in questions]
    assert [(r.answer, r.verdict) for r in results] == [("Paris", "correct")] * 3

    rep = tm.report()
    rep.print()
    qa = rep.node("eval", "checked_qa")
    # The repeated question is answered from DSPy's cache: no LLM call, nothing recorded.
    print(f"checked_qa: {qa.entries} questions, {qa.usage.calls} LLM calls")
    for name in ("answer", "judge"):
        node = qa.children[name]
        print(
            f"  {name}: {node.usage.calls} calls, {node.usage.total_tokens} tokens, "
            f"${node.usage.cost_usd:.6f}"
        )
    assert (qa.entries, qa.usage.calls) == (3, 4)


if __name__ == "__main__":
    main()
