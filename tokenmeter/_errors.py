"""Internal-error handling: tokenmeter never breaks the host program."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

logger = logging.getLogger("tokenmeter")

_F = TypeVar("_F", bound=Callable[..., Any])

#: Set by the project's own test suite, so internal bugs fail loudly there.
RAISE_INTERNAL_ERRORS = os.environ.get("TOKENMETER_RAISE_INTERNAL_ERRORS", "") not in ("", "0")


class BudgetExceeded(Exception):
    """A scope's budget was reached: the next LLM call was refused before it started.

    The attributes name the scope ``path``, the limit ``kind`` (``"max_calls"``,
    ``"max_tokens"`` or ``"max_cost_usd"``), the ``limit`` and what was ``spent``.
    """

    def __init__(self, path: tuple[str, ...], kind: str, limit: float, spent: float) -> None:
        self.path = path
        self.kind = kind
        self.limit = limit
        self.spent = spent
        where = "/".join(path) or "<root>"
        super().__init__(
            f"token budget exceeded in scope {where!r}: {kind}={_fmt(kind, limit)}, "
            f"spent {_fmt(kind, spent)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.kind, self.limit, self.spent))


def _fmt(kind: str, value: float) -> str:
    if kind == "max_cost_usd":
        return f"${value:.6f}"
    return f"{int(value):,}"


def log_internal_error(where: str) -> None:
    """Log the exception being handled as an internal error, or raise it under our own tests."""
    if RAISE_INTERNAL_ERRORS:
        raise
    logger.exception(
        "tokenmeter internal error in %s; your program is unaffected, but this call's usage "
        "may be missing from the report. Please report this bug.",
        where,
    )


class internal_errors_swallowed:
    """The one internal-error guard: an exception inside is logged and swallowed.

    As ``with internal_errors_swallowed("where"):`` or as a decorator,
    ``@internal_errors_swallowed("where")`` (the function then returns None after
    a swallowed error). The error is logged on the ``tokenmeter`` logger; under the
    project's own tests (``TOKENMETER_RAISE_INTERNAL_ERRORS``) it is raised. A
    `BudgetExceeded`, and anything not an ``Exception`` (KeyboardInterrupt), pass.
    """

    __slots__ = ("where",)

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, BudgetExceeded):
            return False
        if RAISE_INTERNAL_ERRORS:
            return False
        logger.error(
            "tokenmeter internal error in %s; your program is unaffected, but this call's "
            "usage may be missing from the report. Please report this bug.",
            self.where,
            exc_info=(exc_type, exc, tb),  # type: ignore[arg-type]
        )
        return True

    def __call__(self, fn: _F) -> _F:
        where = self.where

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            with internal_errors_swallowed(where):
                return fn(*args, **kwargs)
            return None

        return guarded  # type: ignore[return-value]
