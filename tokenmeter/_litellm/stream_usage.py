"""Reading a stream's usage from its chunks, as each LiteLLM release leaves it."""

from __future__ import annotations

from typing import Any

from .extract import attr, to_int


def _chunk_usage(chunk: Any) -> Any:
    """``chunk.usage``, read without pydantic's slow ``__getattr__`` for a missing field."""
    fields = getattr(chunk, "__dict__", None)
    if fields is not None and "usage" in fields:
        return fields["usage"]
    extra = getattr(chunk, "__pydantic_extra__", None)
    if isinstance(extra, dict):
        return extra.get("usage")
    return getattr(chunk, "usage", None)


def usage_in(chunks: list[Any]) -> Any:
    """The provider's usage, from the last chunk that carried any; None if none did.

    LiteLLM before 1.106 leaves an Anthropic stream's input tokens in its first chunk
    (message_start) and gives the last one (message_delta) 0 input tokens: the input
    side is then taken from the last earlier chunk that had it.
    """
    last = None
    for chunk in reversed(chunks):
        u = _chunk_usage(chunk)
        if u is None:
            continue
        i = to_int(getattr(u, "prompt_tokens", None))
        if last is None:
            if i or to_int(getattr(u, "completion_tokens", None)):
                if i or getattr(u, "input_tokens", None) is not None:
                    return u
                last = u
        elif i:
            return _merged_usage(u, last)
    return last


_PROMPT_SIDE = ("cache_read_input_tokens", "cache_creation_input_tokens")


def _merged_usage(first: Any, last: Any) -> Any:
    """``last`` with the input side (tokens, cache tokens, details) of ``first``."""
    try:
        merged = last.model_copy()
        merged.prompt_tokens = first.prompt_tokens
        merged.prompt_tokens_details = getattr(first, "prompt_tokens_details", None)
        for name in _PROMPT_SIDE:
            value = attr(first, name, None)
            if value is not None:
                setattr(merged, name, value)
        merged.total_tokens = to_int(first.prompt_tokens) + to_int(last.completion_tokens)
        return merged
    except Exception:
        return last


def usage_only(chunk: Any) -> bool:
    """Whether ``chunk`` carries usage and nothing else (the chunk ``include_usage`` adds)."""
    if _chunk_usage(chunk) is None:
        return False
    for choice in getattr(chunk, "choices", None) or ():
        if getattr(choice, "finish_reason", None) is not None:
            return False
        delta = getattr(choice, "delta", None)
        if delta is not None and any(
            getattr(delta, name, None) for name in ("content", "tool_calls", "function_call")
        ):
            return False
    return True
