"""The installed LiteLLM release, and marks for what LiteLLM itself cannot do in older ones."""

from __future__ import annotations

import importlib.metadata

import pytest

#: (major, minor) of the installed LiteLLM.
LITELLM = tuple(int(p) for p in importlib.metadata.version("litellm").split(".")[:2])

#: LiteLLM before 1.109 fails completion(..., acompletion=True) by itself, without tokenmeter
#: ("'NoneType' object has no attribute 'update_environment_variables'").
acompletion_flag_works = pytest.mark.skipif(
    LITELLM < (1, 109), reason="LiteLLM itself fails completion(acompletion=True) before 1.109"
)
