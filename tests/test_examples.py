"""Every script in examples/ runs offline and exits 0; ours print their exact numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Examples run, with their whole output checked, by a test of their own: not run twice.
RUN_ELSEWHERE = {"otel_two_services.py": "tests/test_otel_services.py"}
EXAMPLES = sorted(  # not examples/tests_with_budgets/
    p for p in (ROOT / "examples").glob("*.py") if p.name not in RUN_ELSEWHERE
)

# Lines each example must print, exactly (LiteLLM's bundled prices; mock usage).
EXPECTED: dict[str, list[str]] = {
    "quickstart.py": [
        "tokenmeter report: 3 calls, 90 tokens, $0.000252",
        "  release_notes              3       30       0      60      0 $0.000252  100.0%",
        "    ~ gpt-4o-mini            2       20       0      40      0 $0.000027   10.7%",
        "    ~ gpt-4o                 1       10       0      20      0 $0.000225   89.3%",
        "final answer: v2.3: streaming, #412 fixed.",
        "release_notes: 3 calls, 30 input + 60 output = 90 tokens, $0.000252",
        "  gpt-4o       calls=1 $0.000225",
        "  gpt-4o-mini  calls=2 $0.000027",
    ],
    "multi_agent.py": [
        "answer: Revenue grew 12%; growth() computes it.",
        "tokenmeter report: 5 calls, 11,530 tokens, $0.036725",
        "  orchestrator               5    9,300   2,500   2,230  1,100 $0.036725  100.0%",
        "    · own                    2    3,100       0     330      0 $0.011050   30.1%",
        "    researcher               2    5,300   2,500     500      0 $0.018525   50.4%",
        "    coder                    1      900       0   1,400  1,100 $0.007150   19.5%",
        "  own         calls=2 tokens= 3,430 $0.011050",
        "  inclusive   calls=5 tokens=11,530 $0.036725",
        "  researcher  calls=2 tokens= 5,800 $0.018525",
        "              input 5,300: 2,500 cache reads, 2,500 cache writes; output 500: 0 reasoning",
        "  coder       calls=1 tokens= 2,300 $0.007150",
        "              input 900: 0 cache reads, 0 cache writes; output 1,400: 1,100 reasoning",
        "  claude-sonnet-4-5    calls=2 tokens= 5,800 $0.018525",
        "  gpt-4o               calls=2 tokens= 3,430 $0.011050",
        "  o4-mini              calls=1 tokens= 2,300 $0.007150",
        "  anthropic            calls=2 $0.018525 (50.4% of the cost)",
        "  openai               calls=3 $0.018200 (49.6% of the cost)",
    ],
    "pipeline.py": [
        "25/25 samples passed",
        "tokenmeter report: 100 calls, 53,475 tokens, $0.127285",
        "    sample x25             100   46,350       0   7,125      0 $0.127285  100.0%",
        "      formulate x25         25    8,700       0   1,500      0 $0.002205    1.7%",
        "      embed x25             25      250       0       0      0 $0.000005    0.0%",
        "      generate x25          25   27,400       0   5,500      0 $0.123500   97.0%",
        "      judge x25             25   10,000       0     125      0 $0.001575    1.2%",
        "  answer_generation     50 calls  43,025 tokens $0.125075  98.3%",
        "  persona_formulation   25 calls  10,200 tokens $0.002205   1.7%",
        "  retrieval             25 calls     250 tokens $0.000005   0.0%",
        "  generate              25 calls $0.123500",
        "  formulate_prompt      25 calls $0.002205",
        "  judge                 25 calls $0.001575",
        "  embed                 25 calls $0.000005",
        "per sample (25 samples):",
        "  2,139.0 tokens, $0.005091",
        "  these 25 samples cost $0.127285; 1,000 would cost about $5.0914"
        " (2,139,000 tokens, 4,000 calls)",
    ],
    "concurrency.py": [
        "5 answers, 4 shards indexed",
        "tokenmeter report: 19 calls, 570 tokens, $0.000257",
        "async_fan_out: 6 calls, 1 of them its own",
        *(f"  question-{q}: 1 call, 30 tokens" for q in range(5)),
        "thread_pool: 13 calls, 1 of them its own",
        *(f"  shard-{s}: 3 calls, 90 tokens" for s in range(4)),
        "total: 19 calls, 570 tokens, $0.000257",
    ],
    "dspy_program.py": [
        "tokenmeter report: 4 calls, 120 tokens, $0.000477",
        "    checked_qa x3            4       40       0      80      0 $0.000477  100.0%",
        "      answer x3              2       20       0      40      0 $0.000027    5.7%",
        "      judge x3               2       20       0      40      0 $0.000450   94.3%",
        "checked_qa: 3 questions, 4 LLM calls",
        "  answer: 2 calls, 60 tokens, $0.000027",
        "  judge: 2 calls, 60 tokens, $0.000450",
    ],
    "smolagents_team.py": [
        "tokenmeter report: 4 calls, 120 tokens, $0.000477",
        "    · own                    2       20       0      40      0 $0.000450   94.3%",
        "    researcher x2            2       20       0      40      0 $0.000027    5.7%",
        "manager: 4 calls, $0.000477 in all",
        "  its own model (gpt-4o): 2 calls, $0.000450",
        "  researcher (gpt-4o-mini): 2 calls in 2 runs, $0.000027",
    ],
    "mini_swe_agent_batch.py": [
        "tokenmeter report: 3 calls, 90 tokens, $0.000041",
        "    task x3                  3       30       0      60      0 $0.000041  100.0%",
        "3 tasks: 3 calls, 90 tokens, $0.000041; per task $0.000014",
    ],
}


def test_our_examples_are_there() -> None:
    """The examples with exact numbers exist, so discovery cannot skip them silently."""
    assert set(EXPECTED) <= {p.name for p in EXAMPLES}
    for name, test in RUN_ELSEWHERE.items():
        assert (ROOT / "examples" / name).is_file()
        assert name in (ROOT / test).read_text()


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    """The example exits 0 from a scratch directory, with no API key, and prints its numbers."""
    env = {
        k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "PYTEST_ADDOPTS"
    }
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.pop("TOKENMETER_RAISE_INTERNAL_ERRORS", None)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"{script.name} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    lines = proc.stdout.splitlines()
    missing = [line for line in EXPECTED.get(script.name, []) if line not in lines]
    shown = "\n".join(missing)
    assert not missing, f"{script.name} did not print:\n{shown}\n\nit printed:\n{proc.stdout}"
