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
