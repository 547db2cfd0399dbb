"""tokenmeter's pytest plugin: the ``pytest11`` entry point, light until a run uses it.

Installing tokenmeter must not change a pytest run that does not use it. This module
imports nothing of tokenmeter (``import tokenmeter.anything`` would run
``tokenmeter/__init__.py``, which carries scopes into threads and watches for
``import litellm``): it only declares the options, the ``token_budget`` marker and
the fixtures. The plugin proper (`tokenmeter._pytest`) is imported and registered
once the run uses it:

- at configuration, when an option or ini value asks for it (``--tokenmeter``,
  ``--tokenmeter-json``, ``--tokenmeter-max-*``, ``--tokenmeter-save``,
  ``--tokenmeter-compare``, ``--tokenmeter-compare-fail``);
- after collection, when a collected test has a ``token_budget`` marker or uses
  the ``tokenmeter_scope`` fixture (or its deprecated name ``tokenmeter``);
- when a test asks for the fixture at run time (``request.getfixturevalue``).

Documentation: docs/pytest-plugin.md.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tokenmeter import Scope
    from tokenmeter._pytest.plugin import Plugin

#: The fixture that gives a test its scope.
FIXTURE = "tokenmeter_scope"
#: Its former name, kept for one release: it shadows ``import tokenmeter`` in a test module.
DEPRECATED_FIXTURE = "tokenmeter"
MARKER = "token_budget"
#: Where baselines live by default, under the rootdir (like pytest-benchmark's ``.benchmarks``).
DEFAULT_STORAGE = ".tokenmeter"
#: The name the plugin proper is registered under once activated.
PLUGIN_NAME = "tokenmeter-plugin"

MARKER_DOC = (
    "token_budget(max_tokens=None, max_cost_usd=None, max_calls=None, scope=None): "
    "fail the test when its LLM usage, or that of the named scope inside it "
    "(scope='planner' or 'agent/planner'), goes over these limits; calls past a "
    "limit are refused while the test runs (tokenmeter)"
)

#: (option dest, ini name) of every setting that turns on the per-test usage collection.
ACTIVATING = (
    ("tokenmeter", "tokenmeter"),
    ("tokenmeter_json", "tokenmeter_json"),
    ("tokenmeter_max_cost_usd", "tokenmeter_max_cost_usd"),
    ("tokenmeter_max_tokens", "tokenmeter_max_tokens"),
    ("tokenmeter_max_calls", "tokenmeter_max_calls"),
    ("tokenmeter_save", None),
    ("tokenmeter_compare", "tokenmeter_compare"),
    ("tokenmeter_compare_fail", "tokenmeter_compare_fail"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``--tokenmeter*`` options and their ini forms."""
    group = parser.getgroup("tokenmeter", "tokenmeter: LLM tokens and cost per test")
    group.addoption(
        "--tokenmeter",
        action="store_true",
        default=None,
        help="print a table of LLM calls, tokens and cost per test after the run "
        "(ini: tokenmeter = true)",
    )
    group.addoption(
        "--tokenmeter-json",
        metavar="PATH",
        default=None,
        help="write every test's LLM usage as JSON to PATH (ini: tokenmeter_json)",
    )
    group.addoption(
        "--tokenmeter-max-cost-usd",
        metavar="USD",
        default=None,
        help="fail the run when the whole session costs more than USD "
        "(ini: tokenmeter_max_cost_usd)",
    )
    group.addoption(
        "--tokenmeter-max-tokens",
        metavar="N",
        default=None,
        help="fail the run when the whole session uses more than N tokens "
        "(ini: tokenmeter_max_tokens)",
    )
    group.addoption(
        "--tokenmeter-max-calls",
        metavar="N",
        default=None,
        help="fail the run when the whole session makes more than N LLM calls "
        "(ini: tokenmeter_max_calls)",
    )
    group.addoption(
        "--tokenmeter-save",
        metavar="NAME",
        default=None,
        help="save this run's per-test usage as baseline NAME under the storage directory",
    )
    group.addoption(
        "--tokenmeter-compare",
        metavar="NAME",
        nargs="?",
        const="",
        default=None,
        help="show each test's change against baseline NAME (the latest saved when "
        "NAME is left out, or a .json file) (ini: tokenmeter_compare)",
    )
    group.addoption(
        "--tokenmeter-compare-fail",
        metavar="FIELD:LIMIT",
        action="append",
        default=None,
        help="with --tokenmeter-compare, fail the run when a test's tokens, cost or calls "
        "grew past LIMIT: tokens:10%%, cost:5%%, calls:0, cost:0.01; repeatable "
        "(ini: tokenmeter_compare_fail)",
    )
    group.addoption(
        "--tokenmeter-storage",
        metavar="DIR",
        default=None,
        help=f"where baselines are kept, relative to the rootdir (default: {DEFAULT_STORAGE}) "
        "(ini: tokenmeter_storage)",
    )
    parser.addini("tokenmeter", "print the per-test LLM usage table", type="bool", default=False)
    parser.addini("tokenmeter_json", "write per-test LLM usage as JSON to this path", default="")
    parser.addini("tokenmeter_max_cost_usd", "session budget in USD", default="")
    parser.addini("tokenmeter_max_tokens", "session budget in tokens", default="")
    parser.addini("tokenmeter_max_calls", "session budget in LLM calls", default="")
    parser.addini("tokenmeter_compare", "baseline to compare each run with", default="")
    parser.addini(
        "tokenmeter_compare_fail",
        "regression gates (FIELD:LIMIT, one per line)",
        type="linelist",
        default=[],
    )
    parser.addini("tokenmeter_storage", "directory for baselines", default=DEFAULT_STORAGE)


def wanted_by_options(config: pytest.Config) -> bool:
    """Whether an option or ini value asks for the session's usage (or a check of it)."""
    for option, ini in ACTIVATING:
        if config.getoption(option) is not None:
            return True
        if ini is not None and config.getini(ini) not in ("", [], False):
            return True
    return False


def activate(config: pytest.Config) -> Plugin:
    """Import and register the plugin proper for this run (once); return it."""
    plugin: Plugin | None = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is None:
        from tokenmeter._pytest.plugin import Plugin

        plugin = Plugin.create(config)
        config.pluginmanager.register(plugin, PLUGIN_NAME)
    return plugin


def uses_tokenmeter(item: pytest.Item) -> bool:
    """Whether a test has a ``token_budget`` marker or asks for the fixture."""
    if item.get_closest_marker(MARKER) is not None:
        return True
    names = getattr(item, "fixturenames", ())
    return FIXTURE in names or DEPRECATED_FIXTURE in names


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; activate the plugin when an option asks for it."""
    config.addinivalue_line("markers", MARKER_DOC)
    if wanted_by_options(config):
        activate(config)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Activate the plugin when a collected test has the marker or the fixture."""
    if config.pluginmanager.get_plugin(PLUGIN_NAME) is None and any(
        uses_tokenmeter(item) for item in items
    ):
        activate(config)


@pytest.fixture(name=FIXTURE)
def tokenmeter_scope(request: pytest.FixtureRequest) -> Scope:
    """The scope of the running test: ``tokenmeter_scope.usage``, ``.report()``."""
    return activate(request.config).test_scope(request.node)


@pytest.fixture(name=DEPRECATED_FIXTURE)
def _deprecated_tokenmeter_fixture(request: pytest.FixtureRequest) -> Scope:
    """Deprecated name of ``tokenmeter_scope`` (it shadows ``import tokenmeter``)."""
    warnings.warn(
        f"the {DEPRECATED_FIXTURE!r} fixture is deprecated and will be removed in the next "
        f"release: it shadows 'import tokenmeter' inside the test; use {FIXTURE!r} instead",
        DeprecationWarning,
        stacklevel=1,
    )
    return activate(request.config).test_scope(request.node)
