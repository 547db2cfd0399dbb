"""Automatic attribution of LiteLLM calls to the scope that made them.

LiteLLM's public entry points (``litellm.completion``, ``acompletion``,
``embedding``, ... and the ``Router`` methods) are wrapped. The wrapper reads
the current frame in the caller's thread and context, checks budgets before the
call starts, and records the result on that frame before returning it: counted
at once (`record_result`), or, for a plain response, queued on the meter and
counted by the meter's next reading (`deferred.defer`, `deferred.apply`), so a report taken
right after a call already includes it. While a call is in progress it is
marked (``THREAD_CALL`` for a synchronous call, ``IN_CALL`` for an asynchronous
one): LiteLLM's own retries, fallbacks and Router attempts made inside it pass
through and the call is recorded once; calls made meanwhile by LiteLLM's
callbacks and hooks are calls of their own (``wrappers._made_by_callback``).

Streams (``CustomStreamWrapper``, the Responses API's and text completion's stream
classes) are recorded when exhausted, closed, broken
or garbage collected, on the scope where the call was made, whoever consumes
them. This package imports litellm; ``tokenmeter._instrument`` loads it only once
litellm itself is imported.

Modules: ``settings`` (what is wrapped, stream usage), ``extract`` (usage, model,
cost from LiteLLM's objects), ``record`` (recording a call), ``deferred`` (the
queue counted in batches), ``stream_call`` (a stream's call, recorded once however
it ends), ``streams``, ``responses_streams`` and ``text_streams`` (how each stream
class finds its usage), ``wrappers`` (the wrapped entry points), ``install`` (putting the wrappers
on litellm and back).
"""

from __future__ import annotations

from .install import instrument, instrumented, status, uninstrument
from .record import CallState, record_failure, record_result
from .settings import FUNCTIONS, request_stream_usage
from .stream_call import StreamCall
from .wrappers import wrap_async, wrap_sync

__all__ = [
    "FUNCTIONS",
    "CallState",
    "StreamCall",
    "instrument",
    "instrumented",
    "record_failure",
    "record_result",
    "request_stream_usage",
    "status",
    "uninstrument",
    "wrap_async",
    "wrap_sync",
]
