"""Remote functions and an actor for the Ray tests (pickled by value into Ray's workers)."""

from __future__ import annotations

from typing import Any

import tokenmeter as tm
from tokenmeter.integrations import ray as tmray


def _ask(text: str) -> str:
    import litellm

    response = litellm.completion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        mock_response=f"answer to {text}",
    )
    return str(response.choices[0].message.content)


@tmray.remote
def label(i: int) -> tuple[tuple[str, ...], str]:
    """One LiteLLM call in a 'label' scope; returns the task's scope path and the answer."""
    with tm.track("label"):
        return tm.current().path[:-1], _ask(f"item {i}")


@tmray.remote
def fan_out(n: int) -> list[str]:
    """A task starting ``n`` `label` tasks of its own (nested remote calls) in a 'fan' scope."""
    import ray

    with tm.track("fan"):
        return [answer for _path, answer in ray.get([label.remote(i) for i in range(n)])]


@tmray.remote
def record(n: int) -> int:
    """``n`` manual records of 10 input and 1 output tokens."""
    for _ in range(n):
        tm.record(model="gpt-4o-mini", input_tokens=10, output_tokens=1, cost_usd=0.001)
    return n


@tmray.remote
def fails() -> None:
    """One record, then a ValueError."""
    tm.record(model="gpt-4o-mini", input_tokens=7, output_tokens=1, cost_usd=0.001)
    raise ValueError("task failed")


@tmray.remote(num_returns=2)
def two_values() -> tuple[int, int]:
    """One record; two return values."""
    tm.record(model="gpt-4o-mini", input_tokens=3, output_tokens=1, cost_usd=0.001)
    return 1, 2


@tmray.remote
def plus_one(value: int) -> int:
    """``value + 1`` (its argument may be another task's result, usage and all)."""
    return value + 1


@tmray.remote
class Critic:
    """An actor: one LiteLLM call per review, in a 'review' scope."""

    def __init__(self, strictness: int) -> None:
        self.strictness = strictness
        self.reviews = 0

    def review(self, text: str) -> tuple[tuple[str, ...], str]:
        self.reviews += 1
        with tm.track("review"):
            return tm.current().path[:-1], _ask(f"review {text} at {self.strictness}")

    def count(self) -> int:
        return self.reviews


def label_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """A Ray Data batch function: one LiteLLM call per row."""
    with tm.track("label_batch"):
        batch["label"] = [_ask(str(x)) for x in batch["id"]]
    return batch
