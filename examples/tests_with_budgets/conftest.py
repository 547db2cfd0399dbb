"""Offline and reproducible: LiteLLM's bundled price map, read before LiteLLM is imported."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
