"""Observers see every counted call once, and every scope entry and exit, in order."""

from __future__ import annotations

from typing import Any

import litellm
import pytest

import tokenmeter as tm
from tokenmeter import _events


class Collect:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_call(self, record: Any, frame: Any) -> None:
        self.events.append(
            ("call", record.path, record.model, record.input_tokens, frame.scope.path)
        )

    def on_enter(self, frame: Any) -> None:
        self.events.append(("enter", frame.scope.path))

    def on_exit(self, frame: Any) -> None:
        self.events.append(("exit", frame.scope.path))


@pytest.fixture
def collect() -> Any:
    c = Collect()
    _events.add_observer(c)
    yield c
    _events.remove_observer(c)


def test_observer_sees_calls_and_scopes_in_order(collect: Collect) -> None:
    """A manual record and two LiteLLM calls in nested scopes reach the observer once each."""
    meter = tm.Meter()
    with meter.track("a"):
        meter.record(model="gpt-4o-mini", input_tokens=3, output_tokens=1)
        with meter.track("b"):
            for _ in range(2):
                litellm.completion(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    mock_response="ok",
                )
    calls = [e for e in collect.events if e[0] == "call"]
    assert [e[1] for e in calls] == [("a",), ("a", "b"), ("a", "b")]
    assert [e[0] for e in collect.events] == [
        "enter",
        "call",
        "enter",
        "call",
        "call",
        "exit",
        "exit",
    ]
    assert meter.report().total.calls == 3


def test_observer_that_raises_is_swallowed() -> None:
    """An observer raising in on_call does not reach the caller, and the call is still counted."""

    class Boom:
        def on_call(self, record: Any, frame: Any) -> None:
            raise RuntimeError("exporter down")

    boom = Boom()
    _events.add_observer(boom)
    try:
        meter = tm.Meter()
        with meter.track("x"):
            meter.record(model="gpt-4o-mini", input_tokens=1, output_tokens=1)
        assert meter.report().total.calls == 1
    finally:
        _events.remove_observer(boom)
    assert _events.OBSERVERS == ()
