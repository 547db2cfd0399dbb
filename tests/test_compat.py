"""Working with the LiteLLM installed: exact restore, an honest instrumented(), early bindings.

Run by ``make matrix`` against the oldest supported LiteLLM, releases in between and the newest.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import litellm
import pytest
from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper
from litellm.router import Router

import tokenmeter as tm
import tokenmeter.testing
from tokenmeter._litellm import FUNCTIONS

MSGS = [{"role": "user", "content": "hi"}]
STREAM_METHODS = ("__next__", "__anext__", "close", "aclose", "_process_chunk")


def _router() -> Any:
    return litellm.Router(
        model_list=[
            {
                "model_name": "m",
                "litellm_params": {"model": "gpt-4o-mini", "mock_response": "hello there"},
            }
        ]
    )


def _snapshot() -> dict[str, Any]:
    """Every attribute tokenmeter may patch, read as the user would read it."""
    snap: dict[str, Any] = {}
    for name in FUNCTIONS:
        snap[f"litellm.{name}"] = getattr(litellm, name, None)
        snap[f"Router.{name}"] = getattr(Router, name, None)
    for name in STREAM_METHODS:
        snap[f"CustomStreamWrapper.{name}"] = vars(CustomStreamWrapper).get(name)
    for cls in [*_responses_stream_classes(), _text_stream_class()]:
        for name in STREAM_METHODS:
            snap[f"{cls.__name__}.{name}"] = vars(cls).get(name)
    return snap


def _text_stream_class() -> type:
    try:
        from litellm.text_completions.streaming_iterator import TextCompletionStreamWrapper
    except ImportError:  # LiteLLM before the module was split out
        from litellm.utils import TextCompletionStreamWrapper
    return TextCompletionStreamWrapper  # type: ignore[no-any-return]


def _responses_stream_classes() -> list[type]:
    try:
        from litellm.responses import streaming_iterator as it
    except ImportError:
        return []
    return [v for v in vars(it).values() if isinstance(v, type) and v.__name__.endswith("Iterator")]


def test_uninstrument_restores_every_attribute_identically() -> None:
    """uninstrument() leaves each patched attribute (litellm, Router, the stream classes) the very
    object it was; instrumented() named exactly those; the class dictionaries keep their keys."""
    tm.uninstrument()
    before = _snapshot()
    router_keys = set(vars(Router))
    stream_keys = set(vars(CustomStreamWrapper))
    tm.instrument()
    during = _snapshot()
    changed = sorted(k for k in before if during[k] is not before[k])
    assert "litellm.completion" in changed
    assert "Router.completion" in changed
    assert "CustomStreamWrapper.__next__" in changed
    wrapped = tm.instrumented().wrapped
    assert set(wrapped) == set(changed)
    tm.uninstrument()
    after = _snapshot()
    assert [k for k in before if after[k] is not before[k]] == []
    assert set(vars(Router)) == router_keys
    assert set(vars(CustomStreamWrapper)) == stream_keys


def test_router_works_after_uninstrument() -> None:
    """A Router made before, and one made after, uninstrument() answer; nothing is recorded."""
    early = _router()
    tm.uninstrument()
    late = _router()
    with tm.track("off"):
        a = early.completion(model="m", messages=MSGS)
        b = late.completion(model="m", messages=MSGS)
    assert a.choices[0].message.content == "hello there"
    assert b.choices[0].message.content == "hello there"
    assert tm.report().total.calls == 0
    tm.instrument()
    with tm.track("on"):
        r = late.completion(model="m", messages=MSGS)
    node = tm.report().node("on").usage
    assert node.calls == 1
    assert node.input_tokens == r.usage.prompt_tokens
    assert node.output_tokens == r.usage.completion_tokens


def test_instrumented_names_what_is_wrapped() -> None:
    """instrumented() is truthy, names the wrapped entry points and no failure; off, it is falsy."""
    st = tm.instrumented()
    assert st
    assert st.complete
    assert st == True  # noqa: E712  (compatible with the bool it used to be)
    assert dict(st.failed) == {}
    assert {"litellm.completion", "litellm.acompletion", "Router.completion"} <= set(st.wrapped)
    assert {"CustomStreamWrapper.__next__", "CustomStreamWrapper.__anext__"} <= set(st.wrapped)
    assert not set(st.wrapped) & set(st.absent)
    tm.uninstrument()
    off = tm.instrumented()
    assert not off
    assert off == False  # noqa: E712
    assert off.wrapped == ()
    assert repr(off) == "Instrumentation(off)"


def test_absent_entry_points_are_named_and_do_not_warn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry point the installed LiteLLM lacks is listed in .absent; instrumentation stays on."""
    tm.uninstrument()
    monkeypatch.delattr(litellm, "arerank")
    caplog.set_level(logging.WARNING, logger="tokenmeter")
    tm.instrument()
    st = tm.instrumented()
    assert "litellm.arerank" in st.absent
    assert "litellm.arerank" not in st.wrapped
    assert st.complete
    assert [r for r in caplog.records if r.name == "tokenmeter"] == []


class _Unwrappable:
    """Stands in for a LiteLLM entry point tokenmeter cannot wrap (reading it raises)."""

    def __call__(self, *a: Any, **k: Any) -> str:
        return "called"

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"cannot read {name}")


def test_partial_instrumentation_warns_once_naming_the_entry_point(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One entry point that cannot be wrapped: the others are wrapped, instrumented() lists the
    failure, and one WARNING names it, not repeated when instrumenting again."""
    tm.uninstrument()
    monkeypatch.setattr(litellm, "rerank", _Unwrappable())
    monkeypatch.setattr(tm._instrument, "_warned", set())
    caplog.set_level(logging.WARNING, logger="tokenmeter")
    tm.instrument()
    st = tm.instrumented()
    assert st
    assert not st.complete
    assert list(st.failed) == ["litellm.rerank"]
    assert "RuntimeError: cannot read" in st.failed["litellm.rerank"]
    assert "litellm.completion" in st.wrapped
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "litellm.rerank" in warnings[0]
    assert "not attributed" in warnings[0]
    tm.uninstrument()
    tm.instrument()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    with tm.track("still"):
        litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
    assert tm.report().node("still").usage.calls == 1


def test_failed_instrumentation_is_falsy_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Instrumentation that aborts: instrumented() is falsy, names the reason, and warns."""
    from tokenmeter import _litellm

    tm.uninstrument()
    tokenmeter.testing.raise_internal_errors(False)
    monkeypatch.setattr(tm._instrument, "_warned", set())

    def broken() -> None:
        raise ImportError("cannot import name 'X' from 'litellm'")

    monkeypatch.setattr(_litellm, "instrument", broken)
    caplog.set_level(logging.WARNING, logger="tokenmeter")
    try:
        tm.instrument()
        st = tm.instrumented()
        assert not st
        assert dict(st.failed) == {"litellm": "ImportError: cannot import name 'X' from 'litellm'"}
    finally:
        tokenmeter.testing.raise_internal_errors(True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "LiteLLM calls through litellm are not attributed" in warnings[0]


def test_early_from_import_is_found_and_wrapped() -> None:
    """A module that bound litellm.completion while uninstrumented gets the wrapper on
    instrument(), its calls are recorded, and uninstrument() gives it back the original."""
    tm.uninstrument()
    original = litellm.completion
    mod = types.ModuleType("tm_early_user")
    mod.completion = original  # type: ignore[attr-defined]
    mod.llm = original  # type: ignore[attr-defined]  # bound under another name
    sys.modules["tm_early_user"] = mod
    try:
        tm.instrument()
        assert mod.completion is litellm.completion
        assert mod.llm is litellm.completion
        assert {"tm_early_user.completion", "tm_early_user.llm"} <= set(tm.instrumented().rebound)
        with tm.track("early"):
            r = mod.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        usage = tm.report().node("early").usage
        assert usage.calls == 1
        assert usage.input_tokens == r.usage.prompt_tokens
        tm.uninstrument()
        assert mod.completion is original
        assert mod.llm is original
    finally:
        del sys.modules["tm_early_user"]


def test_from_import_before_tokenmeter_is_recorded() -> None:
    """`from litellm import completion` before `import tokenmeter`: its calls are recorded."""
    code = (
        "from litellm import completion, acompletion\n"
        "import asyncio\n"
        "import tokenmeter as tm\n"
        "msgs = [{'role': 'user', 'content': 'hi'}]\n"
        "with tm.track('a'):\n"
        "    r = completion(model='gpt-4o-mini', messages=msgs, mock_response='x')\n"
        "    asyncio.run(acompletion(model='gpt-4o-mini', messages=msgs, mock_response='x'))\n"
        "u = tm.report().node('a').usage\n"
        "print(u.calls, u.input_tokens == 2 * r.usage.prompt_tokens, bool(tm.instrumented()))\n"
    )
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "True", "True"]


@pytest.mark.parametrize(
    "first", ["import tokenmeter._litellm", "from tokenmeter._litellm.extract import tokens"]
)
def test_adapter_imported_before_litellm_still_instruments_it(first: str) -> None:
    """tokenmeter's LiteLLM adapter imported first (it imports litellm): calls recorded."""
    code = (
        "import tokenmeter as tm\n"
        f"{first}\n"
        "import litellm\n"
        "with tm.track('a'):\n"
        "    litellm.completion(model='gpt-4o-mini', mock_response='x',\n"
        "                       messages=[{'role': 'user', 'content': 'hi'}])\n"
        "print(tm.report().node('a').usage.calls, tm.instrumented().complete)\n"
    )
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "True"]
    assert "tokenmeter internal error" not in out.stderr


class _Hostile:
    """Stands in for an odd object another library put in sys.modules: reading it raises."""

    def __getattribute__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


def test_odd_sys_modules_entry_does_not_stop_instrumentation() -> None:
    """An entry of sys.modules that raises when read is passed over: calls are still recorded."""
    tm.uninstrument()
    sys.modules["tm_hostile"] = _Hostile()  # type: ignore[assignment]
    try:
        tm.instrument()
        st = tm.instrumented()
        assert st.complete
        with tm.track("h"):
            litellm.completion(model="gpt-4o-mini", messages=MSGS, mock_response="x")
        assert tm.report().node("h").usage.calls == 1
    finally:
        del sys.modules["tm_hostile"]


def test_a_report_taken_while_an_entry_point_is_unattributed_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An entry point that could not be wrapped is named in the report's metadata, text and file."""
    tm.uninstrument()
    monkeypatch.setattr(litellm, "rerank", _Unwrappable())
    monkeypatch.setattr(tm._instrument, "_warned", set())
    tm.instrument()
    rep = tm.report()
    assert list(rep.meta["unattributed"]) == ["litellm.rerank"]
    assert "! LiteLLM calls through litellm.rerank were not attributed" in rep.format(width=200)
    rep.save(tmp_path / "r.json")
    loaded = tm.Report.load(tmp_path / "r.json")
    assert loaded.meta["unattributed"] == rep.meta["unattributed"]
    tm.uninstrument()  # off on purpose: nothing is reported unattributed
    assert "unattributed" not in tm.report().meta
    monkeypatch.undo()
    tm.instrument()
    assert "unattributed" not in tm.report().meta


def test_a_merged_report_keeps_what_its_parts_could_not_attribute() -> None:
    """Merging a report that names an unattributed entry point keeps the name."""
    part = tm.Report.from_dict({**tm.report().to_dict(), "unattributed": {"litellm.rerank": "x"}})
    merged = tm.Report.merge(part, tm.report())
    assert merged.meta["unattributed"] == {"litellm.rerank": "x"}
