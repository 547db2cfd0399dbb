"""Runs on disk: the session document (``--tokenmeter-json``, ``--tokenmeter-save``), baselines
to compare with (``--tokenmeter-compare``), and the regression gates against them.

A document carries the machine, the git commit and the versions that change what a
suite spends, as pytest-benchmark's saved runs do.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from tokenmeter import __version__
from tokenmeter._atomic import write_json_atomic
from tokenmeter._jsonload import DuplicateKeyError, loads_unique, no_constant

from .results import TestUsage, by_model, sum_usage
from .settings import SettingsError, Tolerance

if TYPE_CHECKING:
    from tokenmeter import Usage

SCHEMA = "tokenmeter.pytest"
SCHEMA_VERSION = 1


def machine_info() -> dict[str, Any]:
    """Where the run happened (as pytest-benchmark records it)."""
    uname = platform.uname()
    return {
        "node": uname.node,
        "system": uname.system,
        "release": uname.release,
        "machine": uname.machine,
        "python_implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
    }


def commit_info(where: Path) -> dict[str, Any]:
    """The git commit, branch and dirty flag of ``where`` (None values outside git)."""
    info: dict[str, Any] = {"id": None, "branch": None, "dirty": None}

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args],
                cwd=where,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    info["id"] = git("rev-parse", "HEAD")
    if info["id"] is not None:
        info["branch"] = git("rev-parse", "--abbrev-ref", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
        info["dirty"] = None if status is None else bool(status)
    return info


def versions() -> dict[str, str | None]:
    """Versions that change what a suite spends or how it is priced."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "tokenmeter": __version__,
        "litellm": version("litellm"),
        "pytest": version("pytest"),
        "python": platform.python_version(),
    }


def session_document(
    tests: Mapping[str, TestUsage],
    rootdir: Path,
    failures: Iterable[str],
    session_limits: Mapping[str, float],
) -> dict[str, Any]:
    """The run as JSON-ready data: what ``--tokenmeter-json`` writes and baselines store."""
    ordered = [tests[k] for k in sorted(tests)]
    v = versions()
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created_at": _dt.datetime.now(tz=_dt.timezone.utc).isoformat(),
        "tokenmeter_version": v["tokenmeter"],
        "litellm_version": v["litellm"],
        "pytest_version": v["pytest"],
        "python_version": v["python"],
        "machine_info": machine_info(),
        "commit_info": commit_info(rootdir),
        "total": sum_usage(t.usage for t in ordered).to_dict(),
        "by_model": {k: u.to_dict() for k, u in by_model(ordered).items()},
        "session_budget": dict(session_limits),
        "failures": list(failures),
        "tests": {t.nodeid: t.to_dict() for t in ordered},
    }


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as strict JSON, atomically (`tokenmeter._atomic`), making its directory.

    Raises OSError when it cannot be written, ValueError when ``data`` is not JSON.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, dict(data), default=str)


@attrs.frozen
class Baseline:
    """A saved run to compare with."""

    name: str
    path: Path
    data: Mapping[str, Any]
    tests: Mapping[str, TestUsage]

    @property
    def label(self) -> str:
        """``'NAME' (commit abc1234, 2026-01-02)`` for headings."""
        commit = (self.data.get("commit_info") or {}).get("id")
        created = str(self.data.get("created_at") or "")[:10]
        bits = [b for b in (f"commit {commit[:7]}" if commit else "", created) if b]
        return f"{self.name!r}" + (f" ({', '.join(bits)})" if bits else "")


def baseline_path(storage: Path, name: str) -> Path:
    """The file a baseline named ``name`` is stored in."""
    return storage / f"{name}.json"


#: Largest baseline file read (a run of many thousand tests is a few megabytes).
MAX_BASELINE_BYTES = 256 * 2**20


def _read_capped(path: Path) -> bytes:
    """The bytes of ``path``; SettingsError naming its size, unread, past `MAX_BASELINE_BYTES`."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        raw = f.read(MAX_BASELINE_BYTES + 1) if size <= MAX_BASELINE_BYTES else b""
        if size > MAX_BASELINE_BYTES or len(raw) > MAX_BASELINE_BYTES:  # or it grew
            raise SettingsError(
                f"--tokenmeter-compare: {path} is {max(size, len(raw)):,} bytes, larger than "
                f"a baseline may be ({MAX_BASELINE_BYTES:,} bytes, 256 MiB)"
            )
    return raw


def load_baseline(storage: Path, name: str) -> Baseline:
    """Load baseline ``name`` (or the most recent when ``name`` is empty, or a .json path).

    Raises SettingsError naming the file and what is wrong with it.
    """
    if not name:
        saved = sorted(storage.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))
        if not saved:
            raise SettingsError(f"--tokenmeter-compare: no baseline saved in {storage} yet")
        path = saved[-1]
    elif name.endswith(".json"):
        path = Path(name)
    else:
        path = baseline_path(storage, name)
    if not path.is_file():
        known = sorted(p.stem for p in storage.glob("*.json")) if storage.is_dir() else []
        raise SettingsError(
            f"--tokenmeter-compare: no baseline {name!r} at {path}"
            + (f" (saved: {', '.join(known)})" if known else " (none saved yet)")
        )
    try:
        data = loads_unique(_read_capped(path).decode("utf-8"), parse_constant=no_constant)
    except DuplicateKeyError as e:
        raise SettingsError(f"--tokenmeter-compare: {path}: {e}") from None
    except SettingsError:
        raise
    except (OSError, ValueError) as e:
        raise SettingsError(f"--tokenmeter-compare: cannot read {path}: {e}") from None
    except RecursionError:
        raise SettingsError(
            f"--tokenmeter-compare: cannot read {path}: nested too deeply"
        ) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise SettingsError(f"--tokenmeter-compare: {path} is not a tokenmeter pytest run")
    version = data.get("schema_version")
    if type(version) is not int or version < 1:
        raise SettingsError(
            f"--tokenmeter-compare: {path}: schema_version must be a positive integer, "
            f"got {version!r:.40}"
        )
    if version > SCHEMA_VERSION:
        raise SettingsError(
            f"--tokenmeter-compare: {path} was written by a newer tokenmeter; upgrade tokenmeter"
        )
    raw_tests = data.get("tests", {})
    if not isinstance(raw_tests, dict):
        raise SettingsError(f"--tokenmeter-compare: {path}: 'tests' is not an object")
    tests: dict[str, TestUsage] = {}
    for nodeid, entry in raw_tests.items():
        try:
            tests[nodeid] = TestUsage.from_dict(nodeid, entry)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SettingsError(
                f"--tokenmeter-compare: {path}: tests[{nodeid!r}] is not a test's usage ({e})"
            ) from None
    return Baseline(path.stem, path, data, tests)


def compare_failures(
    baseline: Baseline, tests: Mapping[str, TestUsage], gates: Iterable[Tolerance]
) -> list[str]:
    """One message per test and gate where usage grew past the tolerance."""
    gates = tuple(gates)
    out: list[str] = []
    for nodeid in sorted(tests):
        base = baseline.tests.get(nodeid)
        if base is None:
            continue
        now = tests[nodeid]
        for gate in gates:
            if gate.exceeded(base.usage, now.usage):
                out.append(
                    f"{nodeid}: {gate.field} {show(gate.field, base.usage)} -> "
                    f"{show(gate.field, now.usage)} "
                    f"({change(gate.value_of(base.usage), gate.value_of(now.usage))}), "
                    f"over the tolerance {gate.text}"
                )
    return out


def show(field: str, u: Usage) -> str:
    """One compared quantity as messages show it."""
    if field == "tokens":
        return f"{u.total_tokens:,}"
    if field == "calls":
        return f"{u.calls:,}"
    return f"${u.cost_usd:.6f}"


def change(base: int, now: int) -> str:
    """The relative change from ``base`` to ``now``: ``+12.5%``, ``+0.0%``, or ``new``."""
    if base == now:
        return "+0.0%"
    if base == 0:
        return "new"
    return f"{100 * (now - base) / base:+.1f}%"
