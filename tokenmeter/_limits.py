"""`Limits`, a scope's budget: loaded with the first budget, not by ``import tokenmeter``.

It is an attrs class, and ``import tokenmeter`` does not load attrs (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import attrs

from ._errors import BudgetExceeded

#: What a budget does once reached: raise, log a warning, or call a function.
OnExceed = Literal["raise", "warn"] | Callable[[BudgetExceeded], None]


@attrs.frozen
class Limits:
    """A scope's budget. Any limit left as None is not enforced."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_calls: int | None = None
    on_exceed: OnExceed = "raise"

    def __attrs_post_init__(self) -> None:
        for name in ("max_tokens", "max_calls"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"{name} must be a non-negative integer or None, got {v!r}")
        c = self.max_cost_usd
        if c is not None and (
            isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 <= c < float("inf")
        ):
            raise ValueError(
                f"max_cost_usd must be a non-negative finite number or None, got {c!r}"
            )
        if not (self.on_exceed in ("raise", "warn") or callable(self.on_exceed)):
            raise ValueError(
                f"on_exceed must be 'raise', 'warn' or a callable, got {self.on_exceed!r}"
            )
