"""The LiteLLM entry points whose calls tokenmeter could not attribute, for reports to say so.

The LiteLLM adapter sets it after each instrumentation (entry point -> the reason it
could not be wrapped) and clears it when attribution is turned off on purpose; a report
taken while it is not empty carries it in its metadata and its text warns.
"""

from __future__ import annotations

from collections.abc import Mapping

#: entry point -> why its calls are not attributed; empty when attribution is complete.
UNATTRIBUTED: dict[str, str] = {}


def set_unattributed(failed: Mapping[str, str]) -> None:
    """Replace what is known to be unattributed with ``failed`` (empty: nothing)."""
    UNATTRIBUTED.clear()
    UNATTRIBUTED.update(failed)
