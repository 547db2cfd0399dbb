"""`Frame`: the value of the scope ContextVar, where usage lands right now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: A frame's ``kids`` until a child is cached (shared, never written: see `Frame`).
NO_KIDS: dict[str, Any] = {}


class Frame:
    """The immutable value of the scope ContextVar: where usage lands right now.

    Never mutated after creation. Entering a scope makes a new frame, or reuses one
    from the parent frame's ``kids``: a frame entered without module, operation or
    attributes is a pure function of its parent frame and its node (budgets are the
    node's shared list), so it is cached there by name and a repeated entry
    allocates no frame. Only while no observer is registered: observers get a
    fresh frame per entry; ``kids`` is `NO_KIDS` until a child is cached. ``old`` is the
    exact value of the ContextVar before the entry, which leaving the scope sets back.

    A top-level frame (``old`` None) is left by resetting ``tok``, the token of the
    ``ContextVar.set`` that entered it, so the caller's context ends without the
    variable when it had none (setting None back would leave it in the mapping). Only
    `with` / `async with` entries keep ``tok``: they take the frame out of its cache
    ``home`` (``_scope.TOP``) while it is entered, so one entry at a time owns it,
    and put it back on leaving.
    ``fast`` and ``pending`` are the node's table of LiteLLM tallies and its tree's
    queue (``_tree.frame_tables``), for the LiteLLM adapter's deferred path; a frame
    made without them never defers.
    """

    __slots__ = (
        "attributes",
        "budgets",
        "fast",
        "home",
        "kids",
        "module",
        "name",
        "old",
        "operation",
        "pending",
        "prev",
        "scope",
        "tok",
    )

    def __init__(
        self,
        scope: Any,
        module: str | None,
        operation: str | None,
        attributes: Mapping[str, Any],
        budgets: Sequence[Any],
        prev: Frame | None,
        old: Frame | object | None = ...,
        tables: tuple[dict[Any, Any], list[Any]] = ({}, []),
    ) -> None:
        self.scope = scope
        self.name: str = scope.name
        self.module = module
        self.operation = operation
        self.attributes = attributes
        self.budgets = budgets
        self.prev = prev
        self.old: Frame | None = prev if old is ... else old  # type: ignore[assignment]
        self.kids: dict[str, Frame] = NO_KIDS
        self.home: dict[str, Frame] | None = None
        self.tok: Any = None
        self.fast, self.pending = tables
