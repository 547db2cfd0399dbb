"""Budgets of the pytest plugin: ``token_budget`` markers, and the verdict on a test or session.

A marker becomes `Limits` on the test's scope (or a scope inside it), enforced by
tokenmeter while the test runs; after the test body, `problems` turns what was spent
and what was refused into the failure message. Session budgets are judged here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tokenmeter import BudgetExceeded

from ._core import cost_to_units

if TYPE_CHECKING:
    import pytest

    from tokenmeter import Limits, Scope, Usage

KINDS = ("max_calls", "max_tokens", "max_cost_usd")
_MARKER_KWARGS = frozenset({*KINDS, "scope"})


class MarkerError(ValueError):
    """A ``token_budget`` marker that cannot be honoured (the test then errors with this text)."""


def marker_budgets(item: pytest.Item) -> dict[tuple[str, ...], dict[str, Any]]:
    """The ``token_budget`` markers of a test by scope path (the closest marker wins).

    Raises MarkerError naming the test and the bad argument.
    """
    from tokenmeter._limits import Limits  # attrs, loaded on first use

    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for mark in item.iter_markers("token_budget"):
        where = f"@pytest.mark.token_budget on {item.nodeid}"
        if mark.args:
            raise MarkerError(f"{where}: takes keyword arguments only, got {mark.args!r}")
        unknown = sorted(set(mark.kwargs) - _MARKER_KWARGS)
        if unknown:
            raise MarkerError(
                f"{where}: unknown argument(s) {', '.join(unknown)}; expected "
                "max_tokens, max_cost_usd, max_calls, scope"
            )
        rel = scope_path(where, mark.kwargs.get("scope"))
        limits = {k: mark.kwargs[k] for k in KINDS if mark.kwargs.get(k) is not None}
        if not limits:
            raise MarkerError(f"{where}: give at least one of max_tokens, max_cost_usd, max_calls")
        try:
            Limits(**limits)
        except ValueError as e:
            raise MarkerError(f"{where}: {e}") from None
        out.setdefault(rel, limits)
    return out


def scope_path(where: str, scope: object) -> tuple[str, ...]:
    """The marker's ``scope=`` as a path relative to the test (``()`` for the test itself)."""
    if scope is None:
        return ()
    if isinstance(scope, str) and scope.strip("/"):
        return tuple(p for p in scope.split("/") if p)
    raise MarkerError(f"{where}: scope must be a scope name or path, got {scope!r}")


class Budget:
    """One ``token_budget`` marker, placed on the test's scope or a scope inside it."""

    __slots__ = ("limits", "node", "rel_path")

    def __init__(self, rel_path: tuple[str, ...], limits: Limits, node: Scope) -> None:
        self.rel_path = rel_path
        self.limits = limits
        self.node = node

    def who(self, nodeid: str) -> str:
        """The test, or the scope inside it, as failure messages name it."""
        if not self.rel_path:
            return nodeid
        return f"scope {'/'.join(self.rel_path)!r} of {nodeid}"

    def problems(self, nodeid: str, refused: list[BudgetExceeded]) -> list[str]:
        """One message per limit that was gone over, or reached with calls refused."""
        usage = self.node.usage
        out: list[str] = []
        for kind in KINDS:
            limit = getattr(self.limits, kind)
            if limit is None:
                continue
            n_refused = sum(1 for e in refused if e.path == self.node.path and e.kind == kind)
            limit_text = f"{kind}={fmt_value(kind, limit)}"
            if over(kind, limit, usage):
                out.append(
                    f"token_budget exceeded: {self.who(nodeid)} {spent_phrase(kind, usage)}, "
                    f"over {limit_text}"
                )
            elif n_refused:
                out.append(
                    f"token_budget exceeded: {self.who(nodeid)} reached {limit_text} "
                    f"({spent_phrase(kind, usage)}) and {n_refused} more "
                    f"call{' was' if n_refused == 1 else 's were'} refused"
                )
        return out


def entered(scope: Scope | None) -> str:
    """The scopes entered inside a test, for the warning about a budget's scope never entered."""
    if scope is None:
        return "none"
    n = len(scope.path)
    names = ["/".join(s.path[n:]) for s in scope.walk() if s.entries and s is not scope]
    return ", ".join(repr(name) for name in names) or "none"


def session_problems(limits: Mapping[str, float], total: Usage) -> list[str]:
    """One message per session budget the run went over."""
    return [
        f"the session {spent_phrase(kind, total)}, over its budget {kind}={fmt_value(kind, limit)}"
        for kind, limit in limits.items()
        if over(kind, limit, total)
    ]


def fmt_value(kind: str, value: float) -> str:
    """A limit or a spend as shown in messages: dollars with 6 decimals, else an integer."""
    if kind == "max_cost_usd":
        return f"${value:.6f}"
    return f"{int(value):,}"


def spent_phrase(kind: str, u: Usage) -> str:
    """What ``u`` spent of the limit ``kind``, in words: 'used 1,200 tokens'."""
    if kind == "max_calls":
        return f"made {u.calls:,} call{'' if u.calls == 1 else 's'}"
    if kind == "max_tokens":
        return f"used {u.total_tokens:,} token{'' if u.total_tokens == 1 else 's'}"
    return f"spent ${u.cost_usd:.6f}"


def over(kind: str, limit: float, u: Usage) -> bool:
    """Whether ``u`` went over the limit (exactly: cost compared in integer units)."""
    if kind == "max_cost_usd":
        return cost_to_units(u.cost_usd) > cost_to_units(limit)
    if kind == "max_calls":
        return u.calls > limit
    return u.total_tokens > limit
