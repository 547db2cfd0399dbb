"""tokenmeter: know where your LLM tokens and dollars go.

Wrap parts of a program in ``with tokenmeter.track("name"):`` or ``@tokenmeter.tracked``;
every LiteLLM call made inside is attributed to that scope, across asyncio tasks
and threads. Read the result with ``tokenmeter.report()``.
"""

from __future__ import annotations

import os as _os
import typing as _typing

from . import _calls_log
from ._errors import BudgetExceeded
from ._handle import Scope
from ._instrument import instrument, instrumented, request_stream_usage, uninstrument
from ._meter import Meter, current, record, report, reset
from ._procs import propagate_to_processes
from ._threads import bind, bind_snapshot, propagate_to_threads, use_scope
from ._track import Track, track, tracked
from ._version import __version__

if _typing.TYPE_CHECKING:
    from ._limits import Limits
    from ._live import live
    from ._pricing import Price, clear_prices, set_price
    from ._record import CallRecord
    from ._report import Projection, Report, ReportNode
    from ._usage import Usage

#: Loaded on first use, so ``import tokenmeter`` stays light (these modules import
#: attrs, json, ...; see docs/performance.md): name -> its module.
_LAZY = {
    "CallRecord": "_record",
    "Limits": "_limits",
    "Price": "_pricing",
    "Projection": "_report",
    "Report": "_report",
    "ReportNode": "_report",
    "Usage": "_usage",
    "clear_prices": "_pricing",
    "live": "_live",
    "set_price": "_pricing",
}

__all__ = [
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


def _public(obj: _typing.Any) -> _typing.Any:
    """Make reprs read ``tokenmeter.Usage``, not ``tokenmeter._usage.Usage``."""
    if hasattr(obj, "__module__"):
        try:
            # A bound method (``record``) reads its function's.
            getattr(obj, "__func__", obj).__module__ = "tokenmeter"
        except (AttributeError, TypeError):  # pragma: no cover - builtins
            pass
    return obj


for _name in __all__:
    if _name not in _LAZY and _name != "__version__":
        _public(globals()[_name])
del _name

# The per-call log on the ``tokenmeter.calls`` logger follows logging's configuration,
# and TOKENMETER_LIVE=1 starts the live ticker (docs/cli.md).
_calls_log.install()
if _os.environ.get("TOKENMETER_LIVE"):
    from ._live import start_from_env as _start_live

    _start_live()

if not _typing.TYPE_CHECKING:  # for type checkers the names above are imported, not looked up

    def __getattr__(name: str) -> _typing.Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'tokenmeter' has no attribute {name!r}")
        from importlib import import_module

        obj = _public(getattr(import_module(f"{__name__}.{module}"), name))
        globals()[name] = obj
        return obj

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
