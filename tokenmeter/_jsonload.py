"""Reading JSON files strictly: a key twice in one object is an error naming where.

``json.loads`` keeps the last of two equal keys and says nothing, so a file edited
by hand (or by a script that merges two objects wrongly) could load with numbers
nobody wrote last. Every file tokenmeter reads (reports, pytest baselines,
imported exports) goes through `loads_unique`, which refuses such a file with a
`DuplicateKeyError` naming the place, in the layout of the report checks
(``nodes[3].usage``, ``tests['t.py::test_a']``). They all pass `no_constant` as
``parse_constant``: a bare ``NaN``, ``Infinity`` or ``-Infinity`` is not JSON, and
a NaN cost would make every comparison false.

The check costs one comparison of lengths per object while parsing; only when a
duplicate is found is the text parsed again, keeping every pair, to name where.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["DuplicateKeyError", "loads_unique", "no_constant"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class DuplicateKeyError(ValueError):
    """A JSON object holds the same key twice: ``where`` (``""`` for the top) and ``key``."""

    def __init__(self, where: str, key: str) -> None:
        self.where = where
        self.key = key
        place = where if where else "the top object"
        super().__init__(f"{place}: duplicate key {_shown(key)}")


class _Duplicate(Exception):
    """Raised inside the parser at the first object with a repeated key."""


class _Pairs(list):  # type: ignore[type-arg]
    """An object's pairs as written, duplicates kept (parsed again to name a duplicate)."""


def no_constant(name: str) -> Any:
    """``parse_constant`` for strict JSON: ValueError ``NaN is not a JSON number``."""
    raise ValueError(f"{name} is not a JSON number")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise _Duplicate
    return d


def loads_unique(text: str, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """``json.loads(text)``, refusing an object with a key twice (`DuplicateKeyError`).

    Other errors are those of ``json.loads`` (``ValueError``, ``RecursionError``).
    """
    try:
        return json.loads(text, object_pairs_hook=_unique, parse_constant=parse_constant)
    except _Duplicate:
        pass
    pairs = json.loads(text, object_pairs_hook=_Pairs, parse_constant=parse_constant)
    raise _first_duplicate(pairs)


def _first_duplicate(top: Any) -> DuplicateKeyError:
    """The first repeated key of ``top`` (objects parsed as `_Pairs`), outer objects first."""
    stack: list[tuple[str, Any]] = [("", top)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, _Pairs):
            seen: set[str] = set()
            for key, _ in value:
                if key in seen:
                    return DuplicateKeyError(where, key)
                seen.add(key)
            stack.extend((_member(where, k), v) for k, v in reversed(value))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(value))))
    raise AssertionError("the parser found a repeated key that is not there")


def _member(where: str, key: str) -> str:
    if _IDENTIFIER.match(key):
        return f"{where}.{key}" if where else key
    return f"{where}[{_shown(key)}]"


def _shown(key: str) -> str:
    text = repr(key)
    return text if len(text) <= 60 else text[:57] + "..."
