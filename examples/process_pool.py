"""Process pools: jobs run in the scope they were submitted from; their usage comes back.

Run: python examples/process_pool.py (offline: LiteLLM answers with mock responses).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import litellm

import tokenmeter as tm


def label(text: str) -> str:
    """Label one review with one LLM call, in a scope of its own."""
    with tm.track("label"):
        response = litellm.completion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"Sentiment of: {text}"}],
            mock_response="positive",
        )
    return str(response.choices[0].message.content)


def main() -> None:
    texts = [f"review {i}" for i in range(12)]
    with tm.track("pipeline"):
        with tm.track("executor"), ProcessPoolExecutor(2) as executor:
            labels = list(executor.map(label, texts))
        with tm.track("pool"), multiprocessing.Pool(2) as pool:
            labels += pool.map(label, texts, chunksize=3)
    rep = tm.report()
    rep.print()
    for name in ("executor", "pool"):
        node = rep.node("pipeline", name, "label")
        print(f"{name}: {node.usage.calls} calls in {node.entries} entries of 'label'")
        assert (node.usage.calls, node.entries) == (12, 12)
    assert labels == ["positive"] * 24


if __name__ == "__main__":
    main()
