"""Shared fixtures: offline prices, loud internal errors, and a clean meter for every test."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import Iterator

import pytest

import tokenmeter
from tokenmeter import _errors

# Under the project's own tests an internal error is a bug: raise it instead of logging.
_errors.RAISE_INTERNAL_ERRORS = True


@pytest.fixture(autouse=True)
def _clean_meter() -> Iterator[None]:
    """Every test starts with an empty default meter and no custom prices."""
    tokenmeter.reset()
    tokenmeter.clear_prices()
    yield
    tokenmeter.reset()
    tokenmeter.clear_prices()
