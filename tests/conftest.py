"""Shared fixtures: offline prices, loud internal errors, tokenmeter's defaults for every test."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import Iterator

# litellm is imported before any test: it loads the importlib_metadata backport, which
# changes how installed packages are found. An in-process pytester run restores the import
# machinery it saw when it started; if litellm were first imported after such a run, no
# package metadata could be found in that worker any more (PackageNotFoundError: httpx2).
import litellm  # noqa: F401
import pytest

import tokenmeter.testing
from tests.fakeproviders import NO_USAGE_CONTENT, NoUsageOpenAI, serving_offline

# Under the project's own tests an internal error is a bug: raise it instead of logging.
tokenmeter.testing.raise_internal_errors()


@pytest.fixture(autouse=True)
def _clean_meter() -> Iterator[None]:
    """Every test starts with an empty default meter and every switch at its default."""
    tokenmeter.testing.reset_defaults()
    yield
    tokenmeter.testing.reset_defaults()


@pytest.fixture(scope="module")
def _no_usage_server() -> Iterator[NoUsageOpenAI]:
    with NoUsageOpenAI(content=NO_USAGE_CONTENT) as srv:
        yield srv


@pytest.fixture
def bare(_no_usage_server: NoUsageOpenAI) -> Iterator[NoUsageOpenAI]:
    """An OpenAI-compatible server sending no usage, answering `NO_USAGE_CONTENT`; offline."""
    with serving_offline(_no_usage_server) as server:
        yield server
