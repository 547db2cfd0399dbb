"""The ``tokenmeter`` command: look at, compare, merge and export saved runs (docs/cli.md).

Exit codes: 0 success; 1 ``diff`` past ``--fail-over``, or ``run`` past its budget;
2 bad arguments; 3 a file that cannot be read, is not a report, or cannot be
written. Errors are one line on stderr, ``tokenmeter: error: ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from tokenmeter._version import __version__

from ._load import EXIT_INPUT, EXIT_OK, EXIT_OVER, EXIT_USAGE, CliError, load_report, load_reports
from ._load import write_file as write_file

__all__ = ["EXIT_INPUT", "EXIT_OK", "EXIT_OVER", "EXIT_USAGE", "main"]

_DESCRIPTION = "Look at, compare, merge and export runs saved by tokenmeter (Report.save)."
_EPILOG = (
    "exit codes: 0 ok; 1 diff past --fail-over, or run past --max-cost-usd; "
    "2 bad arguments; 3 a file cannot be read, is not a report, or cannot be written"
)


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("tokenmeter").strip()
        raise CliError(f"{command}: {message}" if command else message, EXIT_USAGE)


def _whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number of at least ``minimum`` (at most ``maximum``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be {maximum} or less, got {value}")
        return value

    return parse


_width = _whole_number(40, 10_000)  # the text tables' MAX_WIDTH
_depth = _whole_number(0)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from tokenmeter._export import FORMATS as EXPORT_FORMATS
    from tokenmeter._export import WEIGHTS

    from ._tables import DIMENSIONS, FORMATS

    p = _Parser(prog="tokenmeter", description=_DESCRIPTION, epilog=_EPILOG)
    p.add_argument("--version", action="version", version=f"tokenmeter {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    r = sub.add_parser("report", help="show one saved run, or several merged")
    r.add_argument("files", nargs="+", metavar="FILE")
    r.add_argument("--by", choices=DIMENSIONS, help="a breakdown by this dimension instead")
    r.add_argument("--depth", type=_depth, help="fold scopes deeper than N into their parent")
    r.add_argument("--format", choices=FORMATS, default="text")
    r.add_argument("--width", type=_width, default=80, help="width of text tables (default 80)")

    d = sub.add_parser("diff", help="compare two saved runs; exit 1 past --fail-over")
    d.add_argument("base", metavar="BASE")
    d.add_argument("new", metavar="NEW")
    d.add_argument("--format", choices=("text", "markdown"), default="text")
    d.add_argument(
        "--fail-over",
        metavar="PCT%|USD",
        help="exit 1 when the cost grew by more than this: 10%% or 0.05 (dollars)",
    )
    d.add_argument("--scope", metavar="PATH", help="judge this scope (a/b) instead of the total")

    m = sub.add_parser("merge", help="merge saved runs into one file (exact sums)")
    m.add_argument("files", nargs="+", metavar="FILE")
    m.add_argument("-o", "--output", required=True, metavar="OUT")

    h = sub.add_parser("html", help="write a self-contained HTML report")
    h.add_argument("file", metavar="FILE")
    h.add_argument("-o", "--output", required=True, metavar="OUT.html")

    e = sub.add_parser("export", help="write a profile: speedscope, folded stacks, Chrome trace")
    e.add_argument("file", metavar="FILE")
    e.add_argument("--format", choices=EXPORT_FORMATS, required=True)
    e.add_argument(
        "--weight",
        choices=sorted(WEIGHTS),
        default="cost",
        help="folded stacks: what each line weighs (cost in 1e-10 USD units; default cost)",
    )
    e.add_argument("-o", "--output", required=True, metavar="OUT")

    run = sub.add_parser(
        "run",
        help="run a Python program with tokenmeter on; report at its end",
        usage="tokenmeter run [--max-cost-usd X] [--save FILE] [--detailed] "
        "(script.py | -m module) [args ...]",
    )
    run.add_argument("--max-cost-usd", metavar="X", help="exit 1 when the run cost more")
    run.add_argument("--save", metavar="FILE", help="save the report (with per-call records)")
    run.add_argument("--detailed", action="store_true", help="per-model lines in the report")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(args)
    except CliError as e:
        print(f"tokenmeter: error: {e}", file=sys.stderr)
        return e.code
    except RecursionError:
        print("tokenmeter: error: the report's tree is nested too deeply to show", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        # The reader went away (``tokenmeter report x.json | head``): not an error.
        try:  # Python's own flush at exit would fail again: point stdout at /dev/null
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK


def echo(text: str) -> None:
    """Print ``text`` on stdout; what stdout cannot encode shows as backslash escapes."""
    from tokenmeter._format import print_text

    print_text(text, sys.stdout)


def say(text: str) -> None:
    """Print what a command did on stderr, as errors are: stdout carries data alone
    (``-o /dev/stdout`` into a pipe is the file and nothing else)."""
    from tokenmeter._format import print_text

    print_text(text, sys.stderr)


def _main(argv: list[str]) -> int:
    parser = build_parser()
    if argv and argv[0] == "run":
        return _cmd_run(parser, argv[1:])
    try:
        ns = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version
        return int(e.code or 0)
    command: str = ns.command
    if command == "report":
        return _cmd_report(ns)
    if command == "diff":
        return _cmd_diff(ns)
    if command == "merge":
        return _cmd_merge(ns)
    if command == "html":
        return _cmd_html(ns)
    return _cmd_export(ns)


def _cmd_report(ns: argparse.Namespace) -> int:
    from ._tables import prune, render

    rep = load_reports(ns.files)
    if ns.depth is not None:
        rep = prune(rep, ns.depth)
    echo(render(rep, ns.format, ns.by, ns.width))
    return EXIT_OK


def _cmd_diff(ns: argparse.Namespace) -> int:
    from tokenmeter._usage import Usage

    from ._diff import Threshold, render, scope_usage

    threshold = None
    if ns.fail_over is not None:
        try:
            threshold = Threshold.parse(ns.fail_over)
        except ValueError as e:
            raise CliError(f"diff: {e}", EXIT_USAGE) from None
    base, new = load_report(ns.base), load_report(ns.new)
    if ns.scope is not None:
        b, a = scope_usage(base, ns.scope), scope_usage(new, ns.scope)
        if b is None and a is None:
            raise CliError(f"diff: no scope {ns.scope!r} in {ns.base} or {ns.new}", EXIT_USAGE)
        before, after = b or Usage(), a or Usage()
    else:
        before, after = base.total, new.total
    over = threshold is not None and threshold.exceeded(before, after)
    echo(render(base, new, ns.format, threshold, ns.scope, over))
    return EXIT_OVER if over else EXIT_OK


def _cmd_merge(ns: argparse.Namespace) -> int:
    rep = load_reports(ns.files)
    write_file(ns.output, rep.to_json(include_records=True))
    t = rep.total
    say(
        f"merged {len(ns.files)} reports into {ns.output}: {t.calls:,} calls, "
        f"{t.total_tokens:,} tokens, ${t.cost_usd:.6f}"
    )
    return EXIT_OK


def _cmd_html(ns: argparse.Namespace) -> int:
    from tokenmeter._html import to_html

    rep = load_report(ns.file)
    write_file(ns.output, to_html(rep))
    say(f"wrote {ns.output}")
    return EXIT_OK


def _cmd_export(ns: argparse.Namespace) -> int:
    from tokenmeter._export import export_text

    rep = load_report(ns.file)
    try:
        text = export_text(rep, ns.format, ns.weight)
    except ValueError as e:
        raise CliError(f"export: {ns.file}: {e}", EXIT_INPUT) from None
    write_file(ns.output, text)
    say(f"wrote {ns.output} ({ns.format})")
    return EXIT_OK


def _cmd_run(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    from ._run import parse_budget, run_program, split_run_args

    opts, script, rest = split_run_args(argv)
    if opts.get("-h"):
        _print_run_help(parser)
        return EXIT_OK
    budget = parse_budget(opts.get("--max-cost-usd"))
    save = opts.get("--save")
    if isinstance(save, str):
        directory = os.path.dirname(os.path.abspath(save))
        if not os.path.isdir(directory):
            raise CliError(f"run: --save {save}: no directory {directory}", EXIT_INPUT)
    module = opts.get("module")
    return run_program(
        script,
        module if isinstance(module, str) else None,
        rest,
        budget,
        save if isinstance(save, str) else None,
        bool(opts.get("--detailed")),
        sys.stderr,
    )


def _print_run_help(parser: argparse.ArgumentParser) -> None:
    try:
        parser.parse_args(["run", "--help"])
    except SystemExit:
        pass
