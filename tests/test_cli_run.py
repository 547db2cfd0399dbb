"""`tokenmeter run`: a program run with tokenmeter on, its report at the end, its budget."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from test_cli import cli

# The programs below that do not call LiteLLM name the provider of what they record,
# so that their process never imports LiteLLM (seconds per process) to derive it.
AGENT = textwrap.dedent(
    """
    import sys
    import litellm
    import tokenmeter as tm

    n = int(sys.argv[1])
    with tm.track("agent"):
        for _ in range(n):
            litellm.completion(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                mock_response="ok",
            )
    print("args", sys.argv[1:])
    """
)


def test_run_prints_the_report_and_saves_it(tmp_path: Path) -> None:
    """run script.py ARGS runs it with its arguments; report on stderr, budget within, saved."""
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    out = tmp_path / "run.json"
    r = cli("run", "--save", out, "--max-cost-usd", "1", script, "3", "--verbose", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "args ['3', '--verbose']\n"
    lines = r.stderr.splitlines()
    assert lines[0].startswith("tokenmeter report: 3 calls, ")
    assert any(x.split()[:2] == ["agent.py", "3"] for x in lines)
    assert any(x.split()[:2] == ["agent", "3"] for x in lines)
    data = json.loads(out.read_text())
    assert lines[-2] == f"budget: ${data['total']['cost_usd']:.6f} of $1.000000: within"
    assert lines[-1] == f"saved {out} (3 call records)"
    assert [r["path"] for r in data["records"]] == [["agent.py", "agent"]] * 3
    assert data["total"]["calls"] == 3


def test_run_exit_1_past_the_budget(tmp_path: Path) -> None:
    """--max-cost-usd below what the program spends: BudgetExceeded stops it, exit 1."""
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    r = cli("run", "--max-cost-usd", "0.00001", script, "5", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "tokenmeter: budget crossed: " in r.stderr
    assert "\ntokenmeter report: 1 calls, " in r.stderr  # the second call was refused
    assert r.stderr.splitlines()[-1].endswith(" of $0.000010: crossed")
    assert "args" not in r.stdout  # the program stopped at the budget


def test_run_caught_budget_still_exits_1(tmp_path: Path) -> None:
    """A program that catches BudgetExceeded and spent past the limit still exits 1."""
    script = tmp_path / "spend.py"
    script.write_text(
        "import tokenmeter as tm\n"
        "tm.record(model='m', provider='acme', input_tokens=1, output_tokens=1, cost_usd=0.5)\n"
        "try:\n"
        "    tm.record(model='m', provider='acme', input_tokens=1, output_tokens=1, cost_usd=0.5)\n"
        "except tm.BudgetExceeded:\n"
        "    pass\n"
    )
    r = cli("run", "--max-cost-usd", "0.4", script, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "budget: $1.000000 of $0.400000: crossed" in r.stderr


def test_run_module_and_exit_code(tmp_path: Path) -> None:
    """run -m module runs it as __main__ with its arguments; its exit code is kept."""
    (tmp_path / "job.py").write_text(
        "import sys\nimport tokenmeter as tm\n"
        "if __name__ == '__main__':\n"
        "    tm.record(model='gpt-4o', provider='openai', input_tokens=10, output_tokens=5,\n"
        "              cost_usd=0.01)\n"
        "    print(sys.argv[1:])\n"
        "    sys.exit(7)\n"
    )
    r = cli("run", "-m", "job", "--flag", cwd=tmp_path)
    assert r.returncode == 7, r.stderr
    assert r.stdout == "['--flag']\n"
    assert r.stderr.startswith("tokenmeter report: 1 calls, 15 tokens, $0.010000")
    assert any(x.split()[:2] == ["job", "1"] for x in r.stderr.splitlines())


def test_run_unknown_module(tmp_path: Path) -> None:
    """run -m with a module that does not exist: one line, exit 2."""
    r = cli("run", "-m", "no_such_module_here", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr == "tokenmeter: error: run: no module named 'no_such_module_here'\n"


STREAMS_LEFT_OPEN = textwrap.dedent(
    """
    import litellm
    import tokenmeter as tm
    import keeper

    def open_stream(text):
        stream = litellm.completion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            mock_response=text,
            stream=True,
        )
        next(iter(stream))
        return stream

    with tm.track("agent"):
        kept_here = open_stream("one two three four")  # in the script's globals: a cycle
        keeper.HELD.append(open_stream("one two three four"))  # in a module that stays loaded
    """
)


def test_run_counts_streams_left_open_in_its_report(tmp_path: Path) -> None:
    """Streams the program leaves open are in the printed and saved report, once, as dropped."""
    (tmp_path / "keeper.py").write_text("HELD = []\n")
    script = tmp_path / "streams.py"
    script.write_text(STREAMS_LEFT_OPEN)
    out = tmp_path / "run.json"
    r = cli("run", "--save", out, script, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("tokenmeter report: 2 calls, ")
    data = json.loads(out.read_text())
    assert [x["path"] for x in data["records"]] == [["streams.py", "agent"]] * 2
    # Each: LiteLLM's count of the prompt (8) and of the one chunk read (1), estimated.
    assert [
        (x["input_tokens"], x["output_tokens"], x["estimated"], x["metadata"])
        for x in data["records"]
    ] == [(8, 1, True, {"stream": True, "abandoned": True})] * 2
    assert data["total"]["calls"] == 2
