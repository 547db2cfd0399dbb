"""`Scope`: a node of a meter's call tree, as ``track()`` and ``tm.current()`` hand it out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._drain import drain_queued
from ._errors import log_internal_error
from ._tree import (
    Node,
    own_acc_locked,
    reset_subtree,
    settle_locked,
    subtree_acc_locked,
    tree_lock,
)

if TYPE_CHECKING:
    from ._report import Report
    from ._usage import Usage


class Scope(Node):
    """A node of a meter's call tree, and the handle ``track()`` gives back.

    Entering ``track(name)`` under a scope reuses its child of that name, so a
    loop of ``with track("sample")`` makes one node whose ``entries`` counts the
    loop's turns. ``usage`` is live and inclusive (the scope and everything below).
    """

    __slots__ = ()

    parent: Scope | None
    children: dict[str, Scope]

    def __repr__(self) -> str:
        return f"<tokenmeter.Scope {'/'.join(self.path) or '<root>'!r} entries={self.entries}>"

    @property
    def usage(self) -> Usage:
        """Inclusive usage of this scope and its subtree, as of now."""
        from ._usage import usage_from_acc  # attrs, loaded on first use

        drain_queued()
        with tree_lock(self.meter):
            settle_locked(self.meter)
            acc = subtree_acc_locked(self)
        return usage_from_acc(acc)

    @property
    def self_usage(self) -> Usage:
        """Usage recorded on this scope itself, children excluded."""
        from ._usage import usage_from_acc  # attrs, loaded on first use

        drain_queued()
        with tree_lock(self.meter):
            settle_locked(self.meter)
            acc = own_acc_locked(self)
        return usage_from_acc(acc)

    def report(self) -> Report:
        """A consistent snapshot report of this scope's subtree."""
        from ._report import Report, snapshot

        try:
            return snapshot(self.meter, self)
        except Exception as e:
            # An empty report would be a plausible wrong answer: this one says it failed.
            log_internal_error("report")
            return Report.unavailable(f"{type(e).__name__}: {e}"[:300], self.path)

    def reset(self) -> None:
        """Zero the usage, entries and budgets of this scope and its subtree (nodes stay valid)."""
        reset_subtree(self.meter, self)
