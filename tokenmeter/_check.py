"""Checks of user input shared by layers that may not import each other's modules."""

from __future__ import annotations


def short(value: object) -> str:
    """``value`` for an error message: its repr, cut to 80 characters; a huge int by size."""
    text = (
        repr(value)
        if not isinstance(value, int) or value < 10**30
        else f"an integer of {len(str(value))} digits"
    )
    return text if len(text) <= 80 else text[:77] + "..."


def check_label(field: str, value: object) -> str | None:
    """Return ``value`` if it is None or a string with more than spaces, else raise ValueError."""
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    raise ValueError(f"{field} must be a non-empty string or None, got {short(value)}")
