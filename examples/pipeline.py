"""A data pipeline over N samples: what each module costs, per sample, and at 1,000 samples.

Each stage is a function decorated with ``@tm.tracked(module=..., operation=...)``:
the scope is named after the function, and every LLM call inside carries the
module and operation as dimensions, so the report breaks usage down by them.
Each sample runs in ``tm.track("sample")``: one node entered N times, whose
cost per entry scales to an estimate for any number of samples.

Runs offline on LiteLLM mock responses carrying exact token counts.

    .venv/bin/python examples/pipeline.py
"""

from __future__ import annotations

import os

# LiteLLM's bundled price map: no download at import, and the same numbers every run.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

import tokenmeter as tm

SAMPLES = 25


def mock(model: str, prompt: int, completion: int, content: str) -> litellm.ModelResponse:
    """A mock chat answer carrying exactly this usage."""
    return litellm.ModelResponse(
        model=model,
        usage=litellm.Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        ),
        choices=[{"index": 0, "message": {"role": "assistant", "content": content}}],
    )


def chat(model: str, prompt: str, usage: tuple[int, int], answer: str) -> str:
    """One chat call (the mock answer and usage stand in for the model's)."""
    response = litellm.completion(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        mock_response=mock(model, usage[0], usage[1], answer),
    )
    return str(response.choices[0].message.content)


@tm.tracked(module="persona_formulation", operation="formulate_prompt")
def formulate(sample: int) -> str:
    """Turn a raw sample into a persona prompt (a small model)."""
    return chat("gpt-4o-mini", f"sample {sample}", (300 + 4 * sample, 60), f"persona {sample}")


@tm.tracked(module="retrieval", operation="embed")
def embed(text: str) -> list[float]:
    """Embed the prompt for retrieval (LiteLLM's mock embedding counts 10 input tokens)."""
    response = litellm.embedding(
        model="text-embedding-3-small", input=[text], mock_response=[0.1, 0.2, 0.3]
    )
    return list(response.data[0]["embedding"])


@tm.tracked(module="answer_generation", operation="generate")
def generate(persona: str, sample: int) -> str:
    """Write the answer (a large model)."""
    return chat("gpt-4o", persona, (1_000 + 8 * sample, 220), f"answer {sample}")


@tm.tracked(module="answer_generation", operation="judge")
def judge(answer: str) -> bool:
    """Grade the answer (a small model)."""
    return chat("gpt-4o-mini", f"Grade: {answer}", (400, 5), "PASS") == "PASS"


def run(samples: int) -> int:
    """Run every stage on each sample; returns how many passed."""
    passed = 0
    with tm.track("pipeline"):
        for sample in range(samples):
            with tm.track("sample"):
                persona = formulate(sample)
                embed(persona)
                passed += judge(generate(persona, sample))
    return passed


def main() -> None:
    passed = run(SAMPLES)
    print(f"{passed}/{SAMPLES} samples passed\n")

    report = tm.report()
    report.print()

    total = report.total
    print("\nshare of the cost by module:")
    for module, u in report.by_module().items():
        print(
            f"  {module:<20} {u.calls:>3} calls {u.total_tokens:>7,} tokens "
            f"${u.cost_usd:.6f} {u.cost_usd / total.cost_usd:6.1%}"
        )
    print("by operation:")
    for operation, u in report.by_operation().items():
        print(f"  {operation:<20} {u.calls:>3} calls ${u.cost_usd:.6f}")

    sample = report.node("pipeline", "sample")
    print(f"\nper sample ({sample.entries} samples):")
    print(f"  {sample.tokens_per_entry:,.1f} tokens, ${sample.cost_per_entry:.6f}")
    estimate = sample.project(1_000)
    print(f"  {estimate.describe('samples')}")


if __name__ == "__main__":
    main()
