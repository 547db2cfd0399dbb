"""The public surface: exactly these names, all reading as tokenmeter.X, and a light import."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import tokenmeter as tm

PUBLIC = [
    "BudgetExceeded",
    "CallRecord",
    "Limits",
    "Meter",
    "Price",
    "Projection",
    "Report",
    "ReportNode",
    "Scope",
    "Track",
    "Usage",
    "__version__",
    "bind",
    "bind_snapshot",
    "clear_prices",
    "current",
    "instrument",
    "instrumented",
    "live",
    "propagate_to_processes",
    "propagate_to_threads",
    "record",
    "report",
    "request_stream_usage",
    "reset",
    "set_price",
    "track",
    "tracked",
    "uninstrument",
    "use_scope",
]


def test_all_is_pinned_and_sorted() -> None:
    """tokenmeter.__all__ is exactly the pinned list, sorted."""
    assert tm.__all__ == PUBLIC
    assert tm.__all__ == sorted(tm.__all__)


def test_exports_read_as_tokenmeter() -> None:
    """Every exported class and function has __module__ == 'tokenmeter'."""
    for name in PUBLIC:
        obj = getattr(tm, name)
        if name == "__version__":
            assert isinstance(obj, str)
            continue
        assert obj.__module__ == "tokenmeter", name
    assert repr(tm.Usage()).startswith("Usage(")
    assert f"{tm.Meter.__module__}.{tm.Meter.__qualname__}" == "tokenmeter.Meter"


def test_no_private_names_leak_into_the_package_namespace() -> None:
    """Public-looking names in the package namespace are exactly __all__ (plus submodules)."""
    # dir(), not vars(): the report classes are loaded on first use (module __getattr__).
    public = {
        n
        for n in dir(tm)
        if not n.startswith("_") and not inspect.ismodule(getattr(tm, n)) and n != "annotations"
    }
    assert public == set(PUBLIC) - {"__version__"}


def test_contract_signatures() -> None:
    """record() and track() take the contract's keywords."""
    params = inspect.signature(tm.record).parameters
    for name in (
        "model",
        "input_tokens",
        "output_tokens",
        "provider",
        "cost_usd",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "module",
        "operation",
        "metadata",
    ):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert params["provider"].default is None
    assert params["cost_usd"].default is None
    track_params = inspect.signature(tm.track).parameters
    for name in ("module", "operation", "max_tokens", "max_cost_usd", "max_calls"):
        assert track_params[name].default is None, name


def test_import_does_not_import_litellm() -> None:
    """In a fresh process, `import tokenmeter` and recording with a given cost leave litellm out."""
    code = (
        "import sys\n"
        "import tokenmeter as tm\n"
        "assert 'litellm' not in sys.modules, 'import'\n"
        "with tm.track('a'):\n"
        "    tm.record(model='openai/x', input_tokens=1, output_tokens=1, cost_usd=0.5)\n"
        "rep = tm.report()\n"
        "text = rep.format(detailed=True) + rep.to_json()\n"
        "assert 'litellm' not in sys.modules, 'use'\n"
        "print(rep.total.calls)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
