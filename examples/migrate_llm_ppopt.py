"""An LLM-PPOpt token-usage export, seen with tokenmeter: tree, breakdowns and cost.

LLM-PPOpt's TokenTracker writes its records and statistics to JSON
(``get_tracker().export_to_file(path)``). ``tokenmeter.importers.load_llm_ppopt``
turns such a file into a tokenmeter report: the scope tree is module, then
operation; each call is priced from LiteLLM's price map, or from prices you set
(models with no known price are counted as unpriced, never as $0). The numbers
equal the file's own ``statistics`` block, which the example checks.

    .venv/bin/python examples/migrate_llm_ppopt.py [path/to/token_usage.json]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# LiteLLM's bundled price map: no download at import, and the same numbers every run.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import tokenmeter as tm
from tokenmeter.importers import llm_ppopt_statistics, load_llm_ppopt

DEFAULT = Path(__file__).resolve().parent.parent / "tests" / "data" / "llm-ppopt-token-usage.json"


def main(path: Path) -> None:
    """Load the export, print its tree and breakdowns, and check it against its statistics."""
    # LiteLLM's map has no OpenRouter price for this model: price it ourselves
    # (USD per million tokens, under its "provider/model" name).
    tm.set_price("openrouter/x-ai/grok-4.1-fast", input_per_mtok=0.20, output_per_mtok=0.50)

    report = load_llm_ppopt(path)
    report.print()

    print("\nby module (costliest first):")
    for module, usage in report.by_module().items():
        share = usage.total_tokens / report.total.total_tokens
        print(f"  {module:<24} {usage.calls:>4} calls {usage.total_tokens:>9,} tokens {share:6.1%}")

    print("\nby model:")
    for model, usage in report.by_model().items():
        cost = "no known price" if usage.unpriced_calls else f"${usage.cost_usd:.6f}"
        print(f"  {model:<36} {usage.calls:>4} calls {usage.total_tokens:>9,} tokens  {cost}")

    print("\nby provider:")
    for provider, usage in report.by_provider().items():
        print(f"  {provider:<12} {usage.calls:>4} calls {usage.total_tokens:>9,} tokens")

    total = report.total
    per_call = total.cost_usd / total.priced_calls if total.priced_calls else 0.0
    print(
        f"\ncost: ${total.cost_usd:.6f} for {total.priced_calls} priced calls "
        f"(${per_call:.6f} per call); {total.unpriced_calls} calls have no known price"
    )

    with open(path, encoding="utf-8") as f:
        statistics = json.load(f).get("statistics")
    if statistics is not None:
        same = llm_ppopt_statistics(report) == statistics
        print(f"the file's own statistics block: {'reproduced exactly' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
