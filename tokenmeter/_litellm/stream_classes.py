"""The stream classes recorded (LiteLLM's chat stream, its Responses API streams), and how
a stream of each class other than the chat stream is attached to its call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_stream_classes: tuple[type, ...] = ()
#: (class, attach): ``attach(stream, call)`` binds a stream of that class to its call.
ATTACHERS: list[tuple[type, Callable[[Any, Any], None]]] = []


def is_stream(result: object) -> bool:
    """Whether ``result`` is a stream that tokenmeter records."""
    return isinstance(result, _stream_classes)


def add_stream_class(cls: type, attach: Callable[[Any, Any], None] | None = None) -> None:
    """Count instances of ``cls`` as streams; ``attach`` binds one to its call, if given."""
    global _stream_classes
    if cls not in _stream_classes:
        _stream_classes = (*_stream_classes, cls)
        if attach is not None:
            ATTACHERS.append((cls, attach))
