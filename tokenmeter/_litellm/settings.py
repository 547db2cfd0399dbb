"""The adapter's settings: the litellm functions wrapped; whether streams ask for usage."""

from __future__ import annotations

#: Public litellm functions wrapped, and the record kind each produces.
FUNCTIONS: dict[str, str] = {
    "completion": "completion",
    "acompletion": "completion",
    "text_completion": "text_completion",
    "atext_completion": "text_completion",
    "embedding": "embedding",
    "aembedding": "embedding",
    "image_generation": "image_generation",
    "aimage_generation": "image_generation",
    "transcription": "transcription",
    "atranscription": "transcription",
    "speech": "speech",
    "aspeech": "speech",
    "rerank": "rerank",
    "arerank": "rerank",
    "responses": "responses",
    "aresponses": "responses",
    "moderation": "moderation",
    "amoderation": "moderation",
    # Public too; LiteLLM's own num_retries path enters them nested (counted as attempts).
    "completion_with_retries": "completion",
    "acompletion_with_retries": "completion",
}

SETTINGS = {"request_stream_usage": True}


def request_stream_usage(enabled: bool = True) -> None:
    """Ask providers for a final usage chunk on streams (``stream_options.include_usage``).

    On by default: tokenmeter adds ``stream_options={"include_usage": True}`` to
    streaming chat calls that set no ``stream_options`` of their own, when the
    provider accepts it, and keeps the stream looking as it would have (the
    usage chunk is not yielded to you). The usage is then the provider's. Off,
    requests are left untouched, and a stream whose provider sends no usage is
    recorded with LiteLLM's estimate, flagged in ``estimated_calls``.
    """
    SETTINGS["request_stream_usage"] = bool(enabled)
