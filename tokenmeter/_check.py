"""Checks of user input shared by layers that may not import each other's modules."""

from __future__ import annotations

import sys


def short(value: object) -> str:
    """``value`` for an error message: its repr, cut to 80 characters; a huge int by size
    (past ``sys.get_int_max_str_digits()`` digits an int has no text at all)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        sign = "a negative" if value < 0 else "an"
        try:
            digits = str(len(str(abs(value))))
        except ValueError:
            digits = f"more than {sys.get_int_max_str_digits()}"
        return f"{sign} integer of {digits} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_label(field: str, value: object) -> str | None:
    """Return ``value`` if it is None or a string with more than spaces, else raise ValueError."""
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    raise ValueError(f"{field} must be a non-empty string or None, got {short(value)}")
