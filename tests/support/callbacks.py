"""A LiteLLM callback registered for the length of a block, and removed from every list after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import litellm
from litellm.integrations.custom_logger import CustomLogger

#: LiteLLM copies a callback into its per-event lists at the first call.
_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "_async_input_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


@contextlib.contextmanager
def registered(cb: CustomLogger) -> Iterator[CustomLogger]:
    """``cb`` is a LiteLLM callback inside the block and in none of LiteLLM's lists after it."""
    litellm.logging_callback_manager.add_litellm_callback(cb)
    try:
        yield cb
    finally:
        for name in _LISTS:
            callbacks = getattr(litellm, name, None)
            if isinstance(callbacks, list):
                callbacks[:] = [c for c in callbacks if c is not cb]
