"""The installed LiteLLM release, and marks for what LiteLLM itself cannot do in older ones."""

from __future__ import annotations

import importlib.metadata

import litellm
import pytest

#: (major, minor) of the installed LiteLLM.
LITELLM = tuple(int(p) for p in importlib.metadata.version("litellm").split(".")[:2])

#: LiteLLM before 1.109 fails completion(..., acompletion=True) by itself, without tokenmeter
#: ("'NoneType' object has no attribute 'update_environment_variables'").
acompletion_flag_works = pytest.mark.skipif(
    LITELLM < (1, 109), reason="LiteLLM itself fails completion(acompletion=True) before 1.109"
)


#: Chunks of its own for OpenAI's first stream event (the role, empty content): 1, but 0
#: before LiteLLM 1.83 (measured on 1.80.0, 1.81.16, 1.82.6 without tokenmeter), which fold it
#: into the next chunk: an OpenAI stream yields one chunk fewer (5 for "one two three four").
OPENAI_ROLE_CHUNK = 1 if LITELLM >= (1, 83) else 0

#: The exception of a sync stream whose connection is cut midway: MidStreamFallbackError,
#: but APIConnectionError before LiteLLM 1.82 (measured on 1.80.0 and 1.81.16 without
#: tokenmeter).
CUT_STREAM_ERROR: type[Exception] = (
    litellm.exceptions.MidStreamFallbackError
    if LITELLM >= (1, 82)
    else litellm.exceptions.APIConnectionError
)


def _logging_worker_reworked() -> bool:
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
    except ImportError:
        return True
    return hasattr(GLOBAL_LOGGING_WORKER, "_bound_loop")


#: LiteLLM 1.80's logging worker (one bound to the first event loop, running callbacks one at
#: a time) can leave asyncio.run hanging at exit when an async success callback makes a call
#: of its own, without tokenmeter too; the reworked worker (1.85 has it) does not.
async_callback_call_works = pytest.mark.skipif(
    not _logging_worker_reworked(),
    reason="LiteLLM's own logging worker hangs asyncio.run when an async callback makes a call",
)


def pixel_price(model: str, quality: str = "standard") -> float | None:
    """LiteLLM's own price of one 1024x1024 image where its map prices ``model`` per pixel.

    That is its response_cost without tokenmeter: dall-e-3 before 1.106 ($0.0399999238144),
    gpt-image-1 on 1.80 ($0.041999999696896, not by its tokens). None where the release
    prices the model by its tokens or not at all.
    """
    plain = litellm.model_cost.get(model) or {}
    if "output_cost_per_image_token" in plain:
        return None
    for key in (model, f"{quality}/1024-x-1024/{model}"):
        per_pixel = (litellm.model_cost.get(key) or {}).get("input_cost_per_pixel")
        if per_pixel:
            return float(per_pixel) * 1024 * 1024
    return None
