"""Running pytest or Python in a subprocess the way users do, with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent

#: pytest.ini for generated suites (pytester): asyncio on, other dev plugins off for speed.
PYTESTER_INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = ignore::UserWarning:pydantic.*
addopts = -p no:hypothesispytest -p no:benchmark -p no:pytest_httpserver -p no:anyio
"""

_OUTER_RUN_VARS = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")


def isolate_env(monkeypatch: pytest.MonkeyPatch, *, raise_internal_errors: bool = True) -> None:
    """Make a child pytest run independent of the one running this test.

    Offline prices, loud internal errors (unless told otherwise), and no trace of an
    outer xdist worker or PYTEST_ADDOPTS.
    """
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if raise_internal_errors:
        monkeypatch.setenv("TOKENMETER_RAISE_INTERNAL_ERRORS", "1")
    else:
        monkeypatch.delenv("TOKENMETER_RAISE_INTERNAL_ERRORS", raising=False)
    for var in _OUTER_RUN_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the outer run's pytest variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _OUTER_RUN_VARS and k not in ("PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST")
    }
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.update(extra)
    return env


def run_python(
    args: Sequence[str],
    *,
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``python ARGS...`` with this interpreter; output captured as text, never raises on exit."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=clean_env() if env is None else env,
        timeout=timeout,
        check=False,
    )
