"""Reading and writing the files the command line works on, with one-line errors."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenmeter._report import Report

#: Exit codes of the ``tokenmeter`` command (docs/cli.md).
EXIT_OK = 0
EXIT_OVER = 1  # diff: past --fail-over; run: the budget was crossed
EXIT_USAGE = 2  # bad arguments (argparse's own code too)
EXIT_INPUT = 3  # a file could not be read, is not a report, or could not be written


class CliError(Exception):
    """An error the command reports in one line and exits on, with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def load_report(path: str) -> Report:
    """Read a saved report; CliError (exit 3) naming the file and what is wrong."""
    from tokenmeter._jsonload import DuplicateKeyError, loads_unique, no_constant
    from tokenmeter._report import Report
    from tokenmeter._report_io import read_report_bytes

    try:
        raw = read_report_bytes(path)
    except FileNotFoundError:
        raise CliError(f"{path}: no such file", EXIT_INPUT) from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a report file", EXIT_INPUT) from None
    except OSError as e:
        raise CliError(f"{path}: cannot read: {e.strerror or e}", EXIT_INPUT) from None
    except ValueError as e:
        raise CliError(f"{path}: not a tokenmeter report ({e})", EXIT_INPUT) from None
    try:
        data = loads_unique(raw.decode("utf-8"), parse_constant=no_constant)
    except DuplicateKeyError as e:
        raise CliError(f"{path}: malformed report: {e}", EXIT_INPUT) from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: not a tokenmeter report (not UTF-8 text)", EXIT_INPUT) from None
    except RecursionError:
        raise CliError(f"{path}: not a tokenmeter report (nested too deeply)", EXIT_INPUT) from None
    except json.JSONDecodeError as e:
        raise CliError(
            f"{path}: not a tokenmeter report (invalid JSON at line {e.lineno} column {e.colno})",
            EXIT_INPUT,
        ) from None
    except ValueError as e:  # a bare NaN or Infinity, a number past Python's int parsing limit
        raise CliError(f"{path}: not a tokenmeter report (invalid JSON: {e})", EXIT_INPUT) from None
    if not isinstance(data, dict):
        raise CliError(f"{path}: not a tokenmeter report (a JSON object was expected)", EXIT_INPUT)
    try:
        return Report.from_dict(data)
    except KeyError as e:
        raise CliError(
            f"{path}: malformed report: missing field {e.args[0]!r}", EXIT_INPUT
        ) from None
    except (ValueError, TypeError, AttributeError) as e:
        raise CliError(f"{path}: malformed report: {e}", EXIT_INPUT) from None
    except Exception as e:  # anything else a hostile file can provoke: still one line
        raise CliError(f"{path}: malformed report: {type(e).__name__}: {e}", EXIT_INPUT) from None


def load_reports(paths: list[str]) -> Report:
    """Read one or more saved reports; several are merged into one (exact sums)."""
    reports = [load_report(p) for p in paths]
    if len(reports) == 1:
        return reports[0]
    try:
        return reports[0].merge(*reports[1:])
    except ValueError as e:
        raise CliError(f"cannot merge {', '.join(paths)}: {e}", EXIT_INPUT) from None


def write_file(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a failure leaves the old file); CliError if not."""
    from tokenmeter._atomic import write_atomic

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CliError(f"{path}: cannot write: no directory {directory}", EXIT_INPUT)
    try:
        write_atomic(path, text, errors="backslashreplace")  # lone surrogates as \udcXX
    except OSError as e:
        raise CliError(f"{path}: cannot write: {e.strerror or e}", EXIT_INPUT) from None
