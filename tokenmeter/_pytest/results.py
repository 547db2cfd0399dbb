"""Per-test results: what one test spent, and sums over tests.

A worker turns a test's scope into a `TestUsage`, sends it as JSON in the teardown
report's ``user_properties`` (the way it also reaches pytest-xdist's controller),
and the session rebuilds it from there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from tokenmeter import Usage

if TYPE_CHECKING:
    from tokenmeter import Scope

#: Name of the report's user property that carries a test's usage.
PROPERTY = "tokenmeter"


@attrs.frozen
class TestUsage:
    """What one test spent: inclusive usage, per model, and per scope inside the test."""

    __test__ = False  # not a test class, whatever pytest's collection thinks

    nodeid: str
    outcome: str
    usage: Usage
    by_model: Mapping[str, Usage]
    scopes: Mapping[str, Usage]

    @classmethod
    def of_scope(cls, nodeid: str, scope: Scope) -> TestUsage:
        """The usage of a test's scope; ``scopes`` keys are paths relative to it."""
        rep = scope.report()
        n = len(scope.path)
        scopes = {"/".join(node.path[n:]): node.usage for node in rep.walk() if node.path[n:]}
        return cls(nodeid, "", rep.total, rep.by_model(), scopes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also what travels from an xdist worker)."""
        return {
            "outcome": self.outcome,
            "usage": self.usage.to_dict(),
            "by_model": {k: u.to_dict() for k, u in self.by_model.items()},
            "scopes": {k: u.to_dict() for k, u in self.scopes.items()},
        }

    def to_property(self) -> str:
        """The compact JSON carried by the teardown report."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, nodeid: str, d: Mapping[str, Any]) -> TestUsage:
        """Rebuild from `to_dict` output."""
        return cls(
            nodeid,
            str(d.get("outcome", "")),
            Usage.from_dict(d["usage"]),
            {k: Usage.from_dict(v) for k, v in d.get("by_model", {}).items()},
            {k: Usage.from_dict(v) for k, v in d.get("scopes", {}).items()},
        )


def sum_usage(usages: Iterable[Usage]) -> Usage:
    """The exact sum of some usages."""
    total = Usage()
    for u in usages:
        total = total + u
    return total


def by_model(tests: Iterable[TestUsage]) -> dict[str, Usage]:
    """Usage per model over the tests, costliest first (then most tokens, then name)."""
    out: dict[str, Usage] = {}
    for t in tests:
        for model, u in t.by_model.items():
            out[model] = out[model] + u if model in out else u
    return dict(sorted(out.items(), key=lambda kv: (-kv[1].cost_usd, -kv[1].total_tokens, kv[0])))
