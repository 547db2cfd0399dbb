"""Installing tokenmeter changes nothing in a pytest run that does not use it; using it turns it on.

Each run is a real pytest subprocess (pytester) with the installed entry point, compared
with the same run under ``-p no:tokenmeter`` (as if tokenmeter were not installed).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.runs import PYTESTER_INI, isolate_env

pytest_plugins = ["pytester"]

# Writes what tokenmeter would change: the thread hooks, the import machinery, LiteLLM's
# entry points and callbacks (before and after ``import litellm``), and every loaded module.
FINGERPRINT = """
import concurrent.futures
import json
import os
import sys
import threading


def where(fn):
    code = getattr(fn, "__code__", None)
    return None if code is None else f"{code.co_filename}:{code.co_firstlineno}"


def state():
    return {
        "Thread.start": where(threading.Thread.start),
        "ThreadPoolExecutor.submit": where(concurrent.futures.ThreadPoolExecutor.submit),
        "meta_path": [f"{type(f).__module__}.{type(f).__qualname__}" for f in sys.meta_path],
    }


def test_fingerprint():
    before = state()
    import litellm

    after = state()
    for name in ("completion", "acompletion", "embedding", "responses"):
        fn = getattr(litellm, name)
        after[name] = [where(fn), hasattr(fn, "__wrapped__")]
    for name in ("callbacks", "success_callback", "failure_callback", "input_callback",
                 "_async_success_callback", "_async_failure_callback"):
        after[name] = [type(c).__qualname__ for c in getattr(litellm, name, [])]
    with open(os.environ["FINGERPRINT"], "w") as f:
        json.dump({"before": before, "after": after, "modules": sorted(sys.modules)}, f)
"""


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Child runs are independent of this one."""
    isolate_env(monkeypatch)


def _fingerprint(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str, *args: str
) -> dict[str, Any]:
    out = pytester.path / f"{name}.json"
    monkeypatch.setenv("FINGERPRINT", str(out))
    result = pytester.runpytest_subprocess("-p", "no:xdist", *args)
    result.assert_outcomes(passed=1)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_an_unused_install_leaves_threads_imports_and_litellm_as_they_were(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loaded but unused, the plugin imports no tokenmeter module and patches nothing."""
    pytester.makeini(PYTESTER_INI)
    pytester.makepyfile(test_other_project=FINGERPRINT)
    with_plugin = _fingerprint(pytester, monkeypatch, "with")
    without = _fingerprint(pytester, monkeypatch, "without", "-p", "no:tokenmeter")
    assert with_plugin["before"] == without["before"]
    assert with_plugin["after"] == without["after"]
    assert set(with_plugin["modules"]) - set(without["modules"]) == {"pytest_tokenmeter"}
    assert set(without["modules"]) - set(with_plugin["modules"]) == set()
    assert "threading.py:" in with_plugin["before"]["Thread.start"]
    assert "concurrent/futures/thread.py:" in with_plugin["before"]["ThreadPoolExecutor.submit"]
    # The same fingerprint sees tokenmeter once the run asks for it: it can tell.
    on = _fingerprint(pytester, monkeypatch, "on", "--tokenmeter")
    assert "tokenmeter._pytest.plugin" in on["modules"]
    assert "tokenmeter/_threads.py:" in on["before"]["Thread.start"]
    assert "tokenmeter/_threads.py:" in on["before"]["ThreadPoolExecutor.submit"]
    assert on["after"]["completion"] != without["after"]["completion"]


@pytest.mark.parametrize(
    ("ini", "args", "test"),
    [
        ("", (), "@pytest.mark.token_budget(max_calls=5)\ndef test_it():"),
        ("", (), "def test_it(tokenmeter_scope):"),
        ("", (), "def test_it(request):\n    request.getfixturevalue('tokenmeter_scope')"),
        ("tokenmeter = true", (), "def test_it():"),
        ("tokenmeter_max_calls = 10", (), "def test_it():"),
        ("", ("--tokenmeter",), "def test_it():"),
        ("", ("--tokenmeter-json=out.json",), "def test_it():"),
    ],
    ids=["marker", "fixture", "fixture-at-run-time", "ini", "ini-budget", "option", "json"],
)
def test_the_plugin_turns_on_when_the_run_uses_it(
    pytester: pytest.Pytester, ini: str, args: tuple[str, ...], test: str
) -> None:
    """A marker, the fixture, an ini value or an option each give the test its scope."""
    # In-process: tokenmeter is already imported here, so only the scope tells.
    pytester.makeini(PYTESTER_INI + ini + "\n")
    pytester.makepyfile(
        test_uses=f"""
import sys

import pytest

{test}
    import tokenmeter as tm

    assert tm.current().path == ("test_uses.py::test_it",)
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:xdist", *args)
    result.assert_outcomes(passed=1)
