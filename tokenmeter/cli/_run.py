"""`tokenmeter run`: run a Python program with tokenmeter on and report at its end."""

from __future__ import annotations

import importlib.util
import os
import runpy
import sys
import traceback
from typing import IO

import tokenmeter as tm
from tokenmeter._meter import DEFAULT_METER

from ._load import EXIT_OVER, EXIT_USAGE, CliError, write_file

#: The options ``run`` takes before the program, and whether each takes a value.
RUN_OPTIONS = {"--max-cost-usd": True, "--save": True, "--detailed": False, "-h": False}


def split_run_args(argv: list[str]) -> tuple[dict[str, str | bool], str | None, list[str]]:
    """Split ``run``'s arguments into its options, the program, and the program's arguments.

    Options end at the first argument that is not one of ``run``'s: that is the
    script (``script.py``), or ``-m`` followed by a module name. Everything after
    belongs to the program, options included.
    """
    opts: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in ("--help",):
            name = "-h"
        if name == "-m":
            if i + 1 >= len(argv):
                raise CliError("run: -m needs a module name")
            opts["module"] = argv[i + 1]
            return opts, None, argv[i + 2 :]
        if name in RUN_OPTIONS:
            if not RUN_OPTIONS[name]:
                opts[name] = True
                i += 1
                continue
            if eq:
                opts[name] = value
                i += 1
            elif i + 1 < len(argv):
                opts[name] = argv[i + 1]
                i += 2
            else:
                raise CliError(f"run: {name} needs a value")
            continue
        if arg == "--":
            i += 1
            if i >= len(argv):
                break
            return opts, argv[i], argv[i + 1 :]
        if arg.startswith("-"):
            raise CliError(
                f"run: unknown option {arg!r} (the program comes first, then its options)"
            )
        return opts, arg, argv[i + 1 :]
    if "-h" in opts:
        return opts, None, []
    raise CliError("run: name a script (tokenmeter run script.py ...) or a module (-m module)")


def parse_budget(text: str | bool | None) -> float | None:
    """``--max-cost-usd`` as a non-negative finite number of dollars."""
    if text is None or isinstance(text, bool):
        return None
    try:
        value = float(text.lstrip("$"))
    except ValueError:
        raise CliError(f"run: --max-cost-usd must be a number of dollars, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise CliError(f"run: --max-cost-usd must be a non-negative number, got {text!r}")
    return value


def run_program(
    script: str | None,
    module: str | None,
    args: list[str],
    max_cost_usd: float | None,
    save: str | None,
    detailed: bool,
    out: IO[str],
) -> int:
    """Run the program in this process under a scope named after it; its exit code, or 1.

    The program's usage lands in the default meter (with per-call records kept)
    under one scope named after the script's file name or the module. At the end
    the report is printed to ``out`` and, with ``save``, written there with its
    records. Exit code: the program's own; 1 when the budget was crossed.
    """
    if script is not None and not os.path.isfile(script):
        raise CliError(f"run: {script}: no such file", EXIT_USAGE)
    name = os.path.basename(script) if script is not None else str(module)
    DEFAULT_METER.keep_records = True
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    code: int = 0
    crossed = False
    try:
        sys.argv = [script or str(module), *args]
        if script is not None:
            sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        else:
            sys.path.insert(0, os.getcwd())
            first = str(module).partition(".")[0]
            if not first or importlib.util.find_spec(first) is None:
                raise CliError(f"run: no module named {module!r}", EXIT_USAGE)
        with tm.track(name, max_cost_usd=max_cost_usd):
            if script is not None:
                runpy.run_path(script, run_name="__main__")
            else:
                runpy.run_module(str(module), run_name="__main__", alter_sys=True)
    except CliError:
        raise
    except SystemExit as e:
        code = _exit_code(e.code)
    except tm.BudgetExceeded as e:
        print(f"tokenmeter: budget crossed: {e}", file=sys.stderr)
        crossed = True
    except KeyboardInterrupt:
        code = 130
    except Exception:
        traceback.print_exc()
        code = 1
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
    record_streams_left_open()
    rep = tm.report()
    top = rep.root.children.get(name)
    spent = top.usage.cost_usd if top is not None else 0.0
    if max_cost_usd is not None and spent > max_cost_usd:
        crossed = True
    print(rep.format(detailed, per_entry=True), file=out)
    if max_cost_usd is not None:
        state = "crossed" if crossed else "within"
        print(f"budget: ${spent:.6f} of ${max_cost_usd:.6f}: {state}", file=out)
    if save is not None:
        write_file(save, rep.to_json(include_records=True))
        print(f"saved {save} ({len(rep.records):,} call records)", file=out)
    return EXIT_OVER if crossed else code


def record_streams_left_open() -> None:
    """Record the LiteLLM streams the program left open, as the interpreter's exit would.

    The report is printed when the program returns, before the exit, so a stream
    still open then (kept in a variable, say) is recorded now, as dropped, once: it
    is in the printed and saved report. Nothing to do if LiteLLM was never used.
    """
    stream_exit = sys.modules.get("tokenmeter._litellm.stream_exit")
    if stream_exit is not None:
        stream_exit.record_open_streams()


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
