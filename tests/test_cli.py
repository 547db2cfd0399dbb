"""The `tokenmeter` command, run as the installed console script on saved reports."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import markdown
import pytest

import tokenmeter as tm

SCRIPT = shutil.which("tokenmeter", path=os.path.dirname(sys.executable))
HOSTILE = "<img src=x onerror=alert(1)>"


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``tokenmeter`` console script."""
    assert SCRIPT is not None, "the tokenmeter console script is not installed"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "200"}
    env.pop("TOKENMETER_LIVE", None)
    return subprocess.run(
        [SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd, env=env
    )


def rec(model: str, i: int, o: int, cost: float | None) -> None:
    tm.record(model=model, input_tokens=i, output_tokens=o, cost_usd=cost)


def save_base(path: Path) -> Path:
    """agent ($0.001 own) > search (2 x $0.0002), write ($0.003), legacy ($0.0001)."""
    meter = tm.Meter(keep_records=True)
    with meter.track("agent"):
        rec("gpt-4o", 100, 50, 0.001)
        for _ in range(2):
            with meter.track("search"):
                rec("gpt-4o-mini", 40, 10, 0.0002)
        with meter.track("write"):
            rec("claude-haiku-4-5", 300, 200, 0.003)
        with meter.track("legacy"):
            rec("gpt-4o-mini", 10, 10, 0.0001)
    meter.report().save(path, include_records=True)
    return path


def save_new(path: Path) -> Path:
    """The base run with a third search, a costlier write, a new review scope, no legacy."""
    meter = tm.Meter(keep_records=True)
    with meter.track("agent"):
        rec("gpt-4o", 100, 50, 0.001)
        for _ in range(3):
            with meter.track("search"):
                rec("gpt-4o-mini", 40, 10, 0.0002)
        with meter.track("write"):
            rec("claude-haiku-4-5", 600, 400, 0.006)
        with meter.track("review"):
            rec("acme-ft", 50, 5, None)
            rec("gpt-4o-mini", 20, 5, 0.0005)
    meter.report().save(path, include_records=True)
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return save_base(tmp_path / "base.json")


@pytest.fixture
def new(tmp_path: Path) -> Path:
    return save_new(tmp_path / "new.json")


# -- report ---------------------------------------------------------------------------


def test_report_text_prints_the_tree_and_models(base: Path) -> None:
    """`report FILE` prints the tree table and the by-model table, exit 0."""
    r = cli("report", base)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "tokenmeter report: 5 calls, 770 tokens, $0.004500"
    assert (
        "  agent                      5      490       0     280      0 $0.004500  100.0%" in lines
    )
    assert (
        "    search x2                2       80       0      20      0 $0.000400    8.9%" in lines
    )
    models = lines[lines.index(next(x for x in lines if x.startswith("model "))) + 2 :]
    assert models[0].split() == ["claude-haiku-4-5", "1", "500", "$0.003000", "66.7%"]
    assert models[2].split() == ["gpt-4o-mini", "3", "120", "$0.000500", "11.1%"]


def test_report_by_json_and_csv(base: Path) -> None:
    """--by model --format json gives exact usage per model; --format csv one row per scope."""
    r = cli("report", base, "--by", "model", "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["by"] == "model"
    assert data["rows"]["gpt-4o-mini"]["calls"] == 3
    assert data["rows"]["gpt-4o-mini"]["cost_usd"] == pytest.approx(0.0005, abs=1e-12)
    assert data["total"]["total_tokens"] == 770

    r = cli("report", base, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["path"] for row in rows] == [
        "",
        "agent",
        "agent/search",
        "agent/write",
        "agent/legacy",
    ]
    search = rows[2]
    assert (search["entries"], search["calls"], search["total_tokens"]) == ("2", "2", "100")
    assert float(search["cost_usd"]) == pytest.approx(0.0004, abs=1e-12)


def test_report_depth_folds_deeper_scopes(base: Path) -> None:
    """--depth 1 keeps the top scope only, with every call folded into it."""
    r = cli("report", base, "--depth", "1", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["path"] for row in rows] == ["", "agent"]
    assert (rows[1]["calls"], rows[1]["own_calls"]) == ("5", "5")
    assert float(rows[1]["own_cost_usd"]) == pytest.approx(0.0045, abs=1e-12)


def test_report_markdown_escapes_names(tmp_path: Path) -> None:
    """--format markdown renders as a table, and a hostile scope name stays text."""
    meter = tm.Meter()
    with meter.track(HOSTILE), meter.track("a|b"):
        rec("gpt-4o", 10, 10, 0.25)
    meter.report().save(tmp_path / "h.json")
    r = cli("report", tmp_path / "h.json", "--format", "markdown")
    assert r.returncode == 0, r.stderr
    page = markdown.markdown(r.stdout, extensions=["tables"])
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;/a|b" in page
    assert page.count("<tr>") == 4  # head, (total), the hostile scope, a|b


def test_report_width_sets_the_table_width(base: Path) -> None:
    """--width 100 makes the by-model table 100 columns wide."""
    r = cli("report", base, "--by", "model", "--width", "100")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()[1]) == 100


def test_report_width_sets_the_tree_table_width_too(base: Path) -> None:
    """--width 100 makes every line of the scope tree 100 columns; below 64 the tree stays 64."""
    r = cli("report", base, "--width", "100")
    assert r.returncode == 0, r.stderr
    tree = r.stdout.split("\n\n")[0].splitlines()
    assert tree[2] == "-" * 100
    assert len(tree[1]) == 100  # the header, every column in place
    r = cli("report", base, "--width", "50")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n\n")[0].splitlines()[2] == "-" * 64


# -- diff -----------------------------------------------------------------------------


def test_diff_text_sorted_by_cost_change(base: Path, new: Path) -> None:
    """diff lists scopes and models by the size of their cost change, new and gone marked."""
    r = cli("diff", base, new)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == (
        "total: cost $0.004500 -> $0.008100* (+$0.003600, +80.0%); "
        "tokens 770 -> 1,380; calls 5 -> 7"
    )
    start = lines.index(next(x for x in lines if x.startswith("scope ")))
    keys = [x.split()[0] for x in lines[start + 2 : start + 8]]
    assert keys == [
        "(total)",
        "agent",
        "agent/write",
        "agent/review",
        "agent/search",
        "agent/legacy",
    ]
    assert "agent/review (new)" in lines[start + 5]
    assert "agent/legacy (gone)" in lines[start + 7]
    write = lines[start + 4].split()
    assert write[1:] == ["1->1", "500->1,000", "$0.003000", "$0.006000", "+$0.003000", "+100.0%"]


def test_diff_fail_over_percent_fails_and_passes(base: Path, new: Path) -> None:
    """--fail-over 50% exits 1 on an 80% growth; --fail-over 95% exits 0."""
    r = cli("diff", base, new, "--fail-over", "50%")
    assert r.returncode == 1
    assert "FAIL: the total grew past the threshold of 50%" in r.stdout
    r = cli("diff", base, new, "--fail-over", "95%")
    assert r.returncode == 0
    assert "OK: the total is within the threshold of 95%" in r.stdout


def test_diff_fail_over_usd_and_scope(base: Path, new: Path) -> None:
    """A dollar threshold and --scope judge one scope's growth: search grew $0.0002."""
    assert (
        cli("diff", base, new, "--fail-over", "0.0001", "--scope", "agent/search").returncode == 1
    )
    r = cli("diff", base, new, "--fail-over", "$0.0002", "--scope", "agent/search")
    assert r.returncode == 0, r.stdout
    assert "scope agent/search: cost $0.000400 -> $0.000600 (+$0.000200, +50.0%)" in r.stdout
    assert cli("diff", new, base, "--fail-over", "0%").returncode == 0  # it shrank


def test_diff_markdown_renders_for_a_pull_request(base: Path, new: Path) -> None:
    """--format markdown renders as a heading, a verdict and two tables."""
    r = cli("diff", base, new, "--format", "markdown", "--fail-over", "10%")
    assert r.returncode == 1
    page = markdown.markdown(r.stdout, extensions=["tables"])
    assert page.count("<table>") == 2
    assert "<strong>FAIL</strong>" in page
    assert "<td>agent/review <strong>new</strong></td>" in page
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", page)
    write = cells.index("agent/write")
    assert cells[write : write + 7] == [
        "agent/write",
        "1 → 1",
        "500 → 1,000",
        "$0.003000",
        "$0.006000",
        "+$0.003000",
        "+100.0%",
    ]


# -- merge, html, export ----------------------------------------------------------------


def test_merge_is_the_sum(base: Path, new: Path, tmp_path: Path) -> None:
    """merge writes a report whose every node is the sum of the inputs'."""
    out = tmp_path / "merged.json"
    r = cli("merge", base, new, "-o", out)
    assert r.returncode == 0, r.stderr
    merged, a, b = tm.Report.load(out), tm.Report.load(base), tm.Report.load(new)
    assert merged.total == a.total + b.total
    assert merged.node("agent", "search").entries == 5
    assert merged.node("agent", "search").usage == (
        a.node("agent", "search").usage + b.node("agent", "search").usage
    )
    assert merged.node("agent", "legacy").usage == a.node("agent", "legacy").usage
    assert len(merged.records) == 12
    again = cli("report", base, new, "--format", "json")
    assert json.loads(again.stdout)["total"] == merged.total.to_dict()


def test_html_and_export_write_files(base: Path, tmp_path: Path) -> None:
    """html and export write their files and say so on stderr; exit 0."""
    r = cli("html", base, "-o", tmp_path / "r.html")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", f"wrote {tmp_path / 'r.html'}\n")
    assert "$0.004500" in (tmp_path / "r.html").read_text()
    r = cli("export", base, "--format", "folded", "-o", tmp_path / "f.txt")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "f.txt").read_text().splitlines()[0] == "agent 10000000"


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["report", "{d}/missing.json"], 3, "{d}/missing.json: no such file"),
        (["report", "{d}/bad.json"], 3, "{d}/bad.json: not a tokenmeter report (invalid JSON"),
        (["report", "{d}/other.json"], 3, "{d}/other.json: malformed report: not a tokenmeter"),
        (
            ["report", "{d}/notree.json"],
            3,
            "{d}/notree.json: malformed report: tree must be an object, got null",
        ),
        (
            ["diff", "{d}/base.json", "{d}/base.json", "--fail-over", "ten"],
            2,
            "--fail-over must be",
        ),
        (["diff", "{d}/base.json", "{d}/base.json", "--scope", "x/y"], 2, "no scope 'x/y'"),
        (
            ["export", "{d}/norec.json", "--format", "chrome-trace", "-o", "{d}/t"],
            3,
            "per-call records",
        ),
        (["merge", "{d}/base.json", "-o", "{d}/no/such/dir/out.json"], 3, "cannot write"),
        (["report", "{d}/base.json", "--depth", "-1"], 2, "--depth: must be 0 or more"),
        (
            ["report", "{d}/base.json", "--width", "9" * 30],
            2,
            "--width: must be 10000 or less, got 999999999999999999999999999999",
        ),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
        (["run", "{d}/missing.py"], 2, "missing.py: no such file"),
        (["run", "--max-cost-usd", "lots", "{d}/x.py"], 2, "--max-cost-usd must be a number"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    base: Path,
    tmp_path: Path,
    args: list[str],
    code: int,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each bad input gives one line naming it on stderr, a documented exit code, no traceback."""
    from tokenmeter.cli import main

    d = str(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"schema": "something.else"}')
    (tmp_path / "notree.json").write_text('{"schema": "tokenmeter.report", "schema_version": 1}')
    meter = tm.Meter()
    with meter.track("x"):
        rec("gpt-4o", 1, 1, 0.1)
    meter.report().save(tmp_path / "norec.json")
    assert main([a.format(d=d) for a in args]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("tokenmeter: error: ")
    assert message.format(d=d) in err


def test_console_script_errors_are_one_line(tmp_path: Path) -> None:
    """The installed script: a missing file is one line, exit 3; a bad threshold exit 2."""
    r = cli("report", tmp_path / "missing.json")
    assert (r.returncode, r.stdout) == (3, "")
    assert r.stderr == f"tokenmeter: error: {tmp_path / 'missing.json'}: no such file\n"
    r = cli("diff", tmp_path / "a.json", tmp_path / "b.json", "--fail-over", "10 percent")
    assert r.returncode == 2
    assert r.stderr == (
        "tokenmeter: error: diff: --fail-over must be a percentage like 10% "
        "or a dollar amount like 0.05, got '10 percent'\n"
    )


def test_python_dash_m_is_the_same_command(base: Path) -> None:
    """`python -m tokenmeter` runs the same command."""
    r = subprocess.run(
        [sys.executable, "-m", "tokenmeter", "report", str(base), "--by", "provider"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split() == ["provider", "calls", "tokens", "cost", "share"]


# -- the docs page ----------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def console_blocks(text: str) -> list[tuple[str, str]]:
    """(command, expected output) for each ``$ tokenmeter ...`` of the page's console blocks."""
    out: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```console":
            i += 1
            continue
        i += 1
        while not lines[i].startswith("```"):
            assert lines[i].startswith("$ tokenmeter "), lines[i]
            command, expected = lines[i][2:], []
            i += 1
            while not lines[i].startswith(("```", "$ ")):
                expected.append(lines[i])
                i += 1
            out.append((command, "\n".join(expected) + "\n"))
    return out


def test_docs_page_commands_print_what_it_shows(tmp_path: Path) -> None:
    """Every `$ tokenmeter ...` in docs/cli.md prints exactly what the page shows after it."""
    text = DOCS.read_text(encoding="utf-8")
    setup = text.split("```python\n", 1)[1].split("```\n", 1)[0]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(setup, str(DOCS), "exec"), {})
    finally:
        os.chdir(cwd)
    blocks = console_blocks(text)
    assert len(blocks) == 8
    for command, expected in blocks:
        r = cli(*command.split()[1:], cwd=tmp_path)
        assert r.stdout + r.stderr == expected, command


def _corrupt(data: dict[str, object], how: str) -> object:
    nodes = data["nodes"]
    assert isinstance(nodes, list)
    assert len(nodes) > 1
    root, child = nodes[0], nodes[1]
    if how == "usage is a string":
        root["usage"] = "lots"
    elif how == "parent is a word":
        child["parent"] = "root"
    elif how == "entries is a word":
        child["entries"] = "many"
    elif how == "breakdown lacks a model":
        child["breakdown"] = [{"usage": {}}]
    elif how == "a list":
        return [data]
    elif how == "records are numbers":
        data["records"] = [1, 2]
    return data


@pytest.mark.parametrize(
    "how",
    [
        "usage is a string",
        "parent is a word",
        "entries is a word",
        "breakdown lacks a model",
        "a list",
        "records are numbers",
    ],
)
def test_malformed_reports_are_one_line_errors(
    base: Path, tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report file damaged in any of these ways: exit 3, one line naming the file."""
    from tokenmeter.cli import main

    data = json.loads(base.read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_corrupt(data, how)))
    assert main(["report", str(bad)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"tokenmeter: error: {bad}: ")
    assert err.count("\n") == 1


def test_deeply_nested_json_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON nested deeper than Python can read: exit 3, one line, no traceback."""
    from tokenmeter.cli import main

    bad = tmp_path / "deep.json"
    bad.write_text("[" * 200_000 + "]" * 200_000)
    assert main(["report", str(bad)]) == 3
    assert capsys.readouterr().err == (
        f"tokenmeter: error: {bad}: not a tokenmeter report (nested too deeply)\n"
    )


def test_a_number_too_long_to_read_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 5,000-digit number (past Python's int parsing limit): exit 3, one line, no traceback."""
    from tokenmeter.cli import main

    bad = tmp_path / "long.json"
    bad.write_text('{"calls": ' + "9" * 5000 + "}")
    assert main(["report", str(bad)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(
        f"tokenmeter: error: {bad}: not a tokenmeter report (invalid JSON: Exceeds the limit"
    )
    assert err.count("\n") == 1


def test_names_that_are_not_unicode_are_shown_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scope and model names from undecodable bytes (surrogates) show as \\udcXX: exit 0."""
    from tokenmeter.cli import main

    meter = tm.Meter()
    with meter.track("caf\udce9"):
        meter.record(model="m\udcff", input_tokens=3, output_tokens=2, cost_usd=0.5)
    path = tmp_path / "odd.json"
    meter.report().save(path)
    assert main(["report", str(path)]) == 0
    out, err = capsys.readouterr()
    assert (out.splitlines()[0], err) == ("tokenmeter report: 1 calls, 5 tokens, $0.500000", "")
    assert "caf\\udce9" in out
    assert "m\\udcff" in out
    assert main(["diff", str(path), str(path), "--scope", "caf\udce9"]) == 0
    assert "caf\\udce9" in capsys.readouterr().out
    assert main(["html", str(path), "-o", str(tmp_path / "odd.html")]) == 0
    assert "&nbsp;caf\\udce9</td>" in (tmp_path / "odd.html").read_text(encoding="utf-8")
    assert main(["export", str(path), "--format", "folded", "-o", str(tmp_path / "f.txt")]) == 0
    assert (tmp_path / "f.txt").read_text(encoding="utf-8") == "caf\\udce9 5000000000\n"


def test_output_to_dev_stdout_goes_down_the_pipe(base: Path) -> None:
    """`export -o /dev/stdout` with stdout a pipe writes the profile into the pipe: exit 0."""
    r = cli("export", base, "--format", "folded", "-o", "/dev/stdout")
    assert (r.returncode, r.stderr) == (0, "wrote /dev/stdout (folded)\n")
    assert r.stdout.splitlines() == [
        "agent 10000000", "agent;search 4000000", "agent;write 30000000", "agent;legacy 1000000",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["export", "{base}", "--format", "folded"], "wrote {out} (folded)"),
        (["export", "{base}", "--format", "speedscope"], "wrote {out} (speedscope)"),
        (["html", "{base}"], "wrote {out}"),
        (
            ["merge", "{base}", "{new}"],
            "merged 2 reports into {out}: 12 calls, 2,150 tokens, $0.012600",
        ),
    ],
    ids=["folded", "speedscope", "html", "merge"],
)
def test_output_into_a_pipe_is_the_data_alone(
    base: Path, new: Path, tmp_path: Path, args: list[str], said: str
) -> None:
    """`-o /dev/stdout` into a pipe: stdout is byte for byte the file `-o FILE` writes;
    the line saying what was written goes to stderr, for a file too."""
    assert SCRIPT is not None
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("TOKENMETER_LIVE", None)
    outputs = []
    for out in (str(tmp_path / "out"), "/dev/stdout"):
        argv = [a.format(base=base, new=new) for a in args] + ["-o", out]
        r = subprocess.run([SCRIPT, *argv], capture_output=True, timeout=120, env=env)  # pipes
        assert (r.returncode, r.stderr.decode()) == (0, said.format(out=out) + "\n")
        outputs.append(r.stdout)
    written = (tmp_path / "out").read_bytes()
    assert outputs[0] == b""
    if args[0] == "merge":  # the merged file's created_at is the time of the merge
        written, outputs[1] = (
            re.sub(rb'"created_at": "[^"]*"', b"", x) for x in (written, outputs[1])
        )
    assert outputs[1] == written
    assert len(written) > 50


def test_a_gigabyte_of_zeros_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report` of a 1 GB file of NUL bytes: exit 3 at its first byte, one line."""
    from tokenmeter.cli import main

    bad = tmp_path / "zeros.json"
    with open(bad, "wb") as f:
        f.truncate(2**30)  # sparse: no disk used
    assert main(["report", str(bad)]) == 3
    assert capsys.readouterr().err == (
        f"tokenmeter: error: {bad}: not a tokenmeter report "
        "(it does not start with '{': byte 0 is 0x00)\n"
    )


def test_diff_scope_is_the_path_the_table_shows_for_a_subtree_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reports of scope 'agent' saved alone: --scope agent/x judges agent/x; 'x' is no scope."""
    from tokenmeter.cli import main

    paths = []
    for n, cost in enumerate((0.1, 0.3)):
        meter = tm.Meter()
        with meter.track("agent") as agent:
            with meter.track("x"):
                meter.record(model="m", input_tokens=1, output_tokens=1, cost_usd=cost)
            paths.append(tmp_path / f"{n}.json")
            agent.report().save(paths[-1])
    base, new = map(str, paths)
    assert main(["diff", base, new, "--scope", "agent/x", "--fail-over", "10%"]) == 1
    out = capsys.readouterr().out
    assert "scope agent/x: cost $0.100000 -> $0.300000 (+$0.200000, +200.0%)" in out
    assert "agent/x " in out
    assert main(["diff", base, new, "--scope", "x"]) == 2
    assert capsys.readouterr().err == f"tokenmeter: error: diff: no scope 'x' in {base} or {new}\n"


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scope or model named like a formula (=, +, -, @) gets a leading ' in CSV; others not."""
    from tokenmeter.cli import main

    meter = tm.Meter()
    with meter.track('=HYPERLINK("http://x","y")'):
        meter.record(model="+cmd|calc", input_tokens=1, output_tokens=1, cost_usd=0.5)
    with meter.track("plain"):
        meter.record(model="@m", input_tokens=1, output_tokens=1, cost_usd=0.5)
    path = tmp_path / "f.json"
    meter.report().save(path)
    assert main(["report", str(path), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["path"] for r in rows] == ["", '\'=HYPERLINK("http://x","y")', "plain"]
    assert main(["report", str(path), "--format", "csv", "--by", "model"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["model"] for r in rows] == ["'+cmd|calc", "'@m"]


def test_a_bare_nan_in_a_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record's metadata holding a bare NaN: `merge` exits 3 naming the file, as Report.load."""
    from tokenmeter.cli import main

    meter = tm.Meter(keep_records=True)
    meter.record(model="m", input_tokens=1, output_tokens=1, cost_usd=0.1, metadata={"x": 1.5})
    data = meter.report().to_dict(include_records=True)
    data["records"][0]["metadata"]["x"] = float("nan")
    bad = tmp_path / "nan.json"
    bad.write_text(json.dumps(data))  # json.dumps writes a bare NaN
    assert main(["merge", str(bad), "-o", str(tmp_path / "out.json")]) == 3
    assert capsys.readouterr().err == (
        f"tokenmeter: error: {bad}: not a tokenmeter report "
        "(invalid JSON: NaN is not a JSON number)\n"
    )
    assert not (tmp_path / "out.json").exists()


def test_a_key_twice_in_a_file_is_a_one_line_error(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A node's usage with "calls" twice: `merge` exits 3 naming file and place; OUT untouched."""
    from tokenmeter.cli import main

    data = json.loads(base.read_text())
    data["nodes"][2]["usage"]["__second__"] = 2
    bad = tmp_path / "twice.json"
    bad.write_text(json.dumps(data).replace('"__second__"', '"calls"'))
    out = tmp_path / "out.json"
    out.write_text("old")
    assert main(["merge", str(bad), str(base), "-o", str(out)]) == 3
    assert capsys.readouterr().err == (
        f"tokenmeter: error: {bad}: malformed report: nodes[2].usage: duplicate key 'calls'\n"
    )
    assert out.read_text() == "old"
    assert main(["report", str(bad)]) == 3
    assert capsys.readouterr() == (
        "",
        f"tokenmeter: error: {bad}: malformed report: nodes[2].usage: duplicate key 'calls'\n",
    )
