"""tokenmeter: know where your LLM tokens and dollars go.

Wrap parts of a program in ``with tokenmeter.track("name"):`` or ``@tokenmeter.tracked``;
every LiteLLM call made inside is attributed to that scope, across asyncio tasks
and threads. Read the result with ``tokenmeter.report()``.
"""

from __future__ import annotations

from ._errors import BudgetExceeded
from ._instrument import instrument, instrumented, request_stream_usage, uninstrument
from ._meter import Meter, current, record, report, reset
from ._pricing import Price, clear_prices, set_price
from ._record import CallRecord
from ._report import Projection, Report, ReportNode
from ._scope import Limits, Scope
from ._threads import bind, bind_snapshot, propagate_to_threads, use_scope
from ._track import Track, track, tracked
from ._usage import Usage
from ._version import __version__

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

# Reprs read ``tokenmeter.Usage``, not ``tokenmeter._usage.Usage``.
for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and _name != "__version__":
        try:
            _obj.__module__ = "tokenmeter"
        except (AttributeError, TypeError):  # pragma: no cover - builtins
            pass
del _name, _obj
