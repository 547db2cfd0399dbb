"""LiteLLM responses with exact usage, for ``mock_response=`` (no network, no API key)."""

from __future__ import annotations

from typing import Any

MESSAGES = [{"role": "user", "content": "hi"}]


def reply(
    input_tokens: int,
    output_tokens: int,
    model: str = "gpt-4o-mini",
    *,
    cache_read_tokens: int = 0,
    reasoning_tokens: int = 0,
    content: str = "ok",
) -> Any:
    """A chat ``ModelResponse`` whose usage is exactly these counts."""
    import litellm

    usage: dict[str, Any] = {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    if cache_read_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": cache_read_tokens}
    if reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return litellm.ModelResponse(
        model=model,
        choices=[{"message": {"role": "assistant", "content": content}}],
        usage=litellm.Usage(**usage),
    )


def complete(input_tokens: int, output_tokens: int, model: str = "gpt-4o-mini", **kw: Any) -> Any:
    """``litellm.completion`` answered by `reply` (the call tokenmeter attributes)."""
    import litellm

    return litellm.completion(
        model=model,
        messages=MESSAGES,
        mock_response=reply(input_tokens, output_tokens, model, **kw),
    )


async def acomplete(
    input_tokens: int, output_tokens: int, model: str = "gpt-4o-mini", **kw: Any
) -> Any:
    """``litellm.acompletion`` answered by `reply`."""
    import litellm

    return await litellm.acompletion(
        model=model,
        messages=MESSAGES,
        mock_response=reply(input_tokens, output_tokens, model, **kw),
    )


def usage_counts(u: Any) -> tuple[int, int, int, int, int, int]:
    """A `tokenmeter.Usage` as (calls, input, output, estimated, failed, unpriced)."""
    return (
        u.calls,
        u.input_tokens,
        u.output_tokens,
        u.estimated_calls,
        u.failed_calls,
        u.unpriced_calls,
    )
