"""Helpers for testing code that uses tokenmeter: an isolated meter, and a reset of every switch.

```python
import pytest
import tokenmeter as tm
import tokenmeter.testing


@pytest.fixture(autouse=True)
def _tokenmeter_defaults():
    tokenmeter.testing.reset_defaults()  # every test starts from tokenmeter's defaults
    yield
    tokenmeter.testing.reset_defaults()


def test_summary_makes_one_call():
    with tokenmeter.testing.isolated_meter() as meter:
        summarize("some text")  # code under test: tm.track, LiteLLM calls, tm.record ...
    assert meter.report().total.calls == 1
```

Documentation: docs/testing.md.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from . import _errors
from ._instrument import instrument, instrumented, request_stream_usage, uninstrument
from ._meter import Meter, reset
from ._procs import propagate_to_processes
from ._threads import propagate_to_threads, use_scope

__all__ = ["isolated_meter", "raise_internal_errors", "reset_defaults"]

_OFF = ("0", "false", "no", "off")


@contextlib.contextmanager
def isolated_meter(*, keep_records: bool = True) -> Iterator[Meter]:
    """A fresh `tokenmeter.Meter`, current inside the block; it yields the meter.

    Everything recorded inside the block lands in it and nowhere else: scopes opened
    with ``tm.track`` / ``@tm.tracked`` (they nest under the meter's root), LiteLLM
    calls, ``tm.record``, and the threads and tasks started inside. Read it with
    ``meter.report()`` (or ``tm.report()`` inside the block, which reports the meter
    of the current scope). ``keep_records``
    keeps every call's `CallRecord` (``meter.records()``), on by default here.
    Blocks nest; the enclosing scope is current again after the block.
    """
    meter = Meter(keep_records=keep_records)
    with use_scope(meter.root):
        yield meter


def reset_defaults() -> None:
    """Put every tokenmeter global back as a fresh ``import tokenmeter`` sets it.

    The default meter is emptied (``tm.reset()``); custom prices are cleared
    (``tm.clear_prices()``); stream usage is requested again
    (``tm.request_stream_usage(True)``); carrying scopes into threads and
    process pools, and LiteLLM instrumentation, are on, unless
    ``TOKENMETER_PROPAGATE_THREADS=0``, ``TOKENMETER_PROPAGATE_PROCESSES=0`` or
    ``TOKENMETER_INSTRUMENT_LITELLM=0`` in the environment turn them off.
    Meant for an autouse fixture, before and after each test.
    """
    from ._pricing import clear_prices

    reset()
    clear_prices()
    request_stream_usage(True)
    propagate_to_threads(_env_on("TOKENMETER_PROPAGATE_THREADS"))
    propagate_to_processes(_env_on("TOKENMETER_PROPAGATE_PROCESSES"))
    wanted = _env_on("TOKENMETER_INSTRUMENT_LITELLM")
    if wanted and not instrumented():
        instrument()
    elif not wanted and instrumented():
        uninstrument()


def raise_internal_errors(enabled: bool = True) -> None:
    """Raise tokenmeter's internal errors instead of logging and swallowing them.

    tokenmeter never lets a bug of its own break the host program: it logs it on the
    ``tokenmeter`` logger and goes on. In a test suite you may prefer to see it fail.
    ``TOKENMETER_RAISE_INTERNAL_ERRORS=1`` in the environment does the same from the start.
    """
    _errors.RAISE_INTERNAL_ERRORS = bool(enabled)


def _env_on(name: str) -> bool:
    return os.environ.get(name, "1").lower() not in _OFF
