"""Offline and reproducible: LiteLLM's bundled price map, and tokenmeter's defaults per test."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import Iterator

import pytest

import tokenmeter.testing


@pytest.fixture(autouse=True)
def _tokenmeter_defaults() -> Iterator[None]:
    """Each test starts from tokenmeter's defaults, whatever the test before it switched."""
    tokenmeter.testing.reset_defaults()
    yield
    tokenmeter.testing.reset_defaults()
