"""Writing files atomically: every file tokenmeter writes goes through `write_atomic`.

The text is written to a temporary file in the target's directory, flushed to disk
(fsync), then renamed over the target, so a reader sees the old file or the new
one, never half of either, and a crash mid-write leaves the old file whole.

- The new file gets the mode a plain ``open(path, "w")`` would give it: that of
  the file it replaces, else 0o666 minus the umask (never the 0o600 of a
  `tempfile.mkstemp`).
- A missing directory is a `FileNotFoundError` that names the directory.
- Saving onto a symbolic link writes the file the link points to and keeps the
  link (a plain rename would replace the link with a file).
- A path that exists but is not a regular file (a named pipe, a device,
  ``/dev/stdout``) is written in place, as ``open(path, "w")`` would: renaming
  over it would replace the pipe or device with a file.
- A symbolic link in a loop is an OSError (ELOOP), as for ``open()``.
- The temporary file's name fits the file system however long the target's is.
- `dumps_json` writes strict JSON: a NaN or infinity (which JSON cannot hold) is a
  `ValueError` naming where it is, never a bare ``NaN`` that other readers reject.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["dumps_json", "write_atomic", "write_json_atomic"]

#: Characters of the target's name kept in the temporary file's name (names are
#: limited to 255 bytes on most file systems; this leaves room for the rest).
_NAME_KEPT = 40


def write_atomic(
    path: str | os.PathLike[str],
    data: str | bytes,
    *,
    encoding: str = "utf-8",
    errors: str = "strict",
) -> Path:
    """Write ``data`` to ``path`` atomically; return the path of the file written.

    ``str`` data is encoded with ``encoding`` and ``errors`` (as `str.encode`). When
    ``path`` is a symbolic link, the file it points to is written and the link kept.
    """
    raw = data.encode(encoding, errors) if isinstance(data, str) else bytes(data)
    if _not_a_regular_file(os.fspath(path)):
        with open(path, "wb") as f:  # a pipe or device: there is no old file to keep
            f.write(raw)
        return Path(os.path.abspath(path))
    target = _resolve(os.fspath(path))
    directory, name = os.path.split(target)
    if not os.path.isdir(directory):
        if os.path.exists(directory):
            raise NotADirectoryError(
                errno.ENOTDIR,
                f"cannot write {os.fspath(path)!r}: {directory!r} is not a directory",
                directory,
            )
        raise FileNotFoundError(
            errno.ENOENT,
            f"cannot write {os.fspath(path)!r}: the directory {directory!r} does not exist",
            directory,
        )
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = None
    tmp = os.path.join(directory, f".{name[:_NAME_KEPT]}.{secrets.token_hex(6)}.tmp")
    # 0o666: the umask then gives the mode a plain open() would (mkstemp's 0o600 would stay).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with open(fd, "wb") as f:
            f.write(raw)
            f.flush()
            if mode is not None:
                os.chmod(tmp, mode)  # the mode of the file replaced, as open() keeps it
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)
    return Path(target)


def _not_a_regular_file(path: str) -> bool:
    """Whether ``path`` exists and is neither a regular file nor a directory."""
    try:
        mode = os.stat(path).st_mode  # through links: /dev/stdout is the pipe or terminal
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _resolve(target: str) -> str:
    """The absolute path to write: a symbolic link's final target, else ``target``."""
    target = os.path.abspath(target)
    if os.path.islink(target):
        real = os.path.realpath(target)
        if os.path.islink(real):  # what realpath gives up on: a loop of links
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), target)
        return real
    # A link among the parent directories is fine: the rename happens inside it.
    return target


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable where the platform allows it (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def dumps_json(
    obj: Any, *, indent: int | None = 2, default: Callable[[Any], Any] | None = None
) -> str:
    """``obj`` as strict JSON text; a NaN or infinity raises ValueError naming where it is."""
    try:
        return json.dumps(obj, indent=indent, allow_nan=False, default=default)
    except ValueError as e:
        where = _non_finite(obj)
        if where is None:
            raise
        path, value = where
        raise ValueError(
            f"{path} is {value!r}, which JSON cannot hold (only finite numbers)"
        ) from e


def write_json_atomic(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    indent: int | None = 2,
    default: Callable[[Any], Any] | None = None,
) -> Path:
    """Write ``obj`` to ``path`` as strict JSON (`dumps_json`), atomically (`write_atomic`).

    Nothing is written when ``obj`` cannot be written as JSON.
    """
    text = dumps_json(obj, indent=indent, default=default)
    return write_atomic(path, text + "\n" if indent is not None else text)


def _non_finite(obj: Any) -> tuple[str, float] | None:
    """Where the first NaN or infinity in ``obj`` is, as ``a.b[3].c`` (iterative: any depth)."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                return path or "the value", value
        elif isinstance(value, dict):
            items = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
            stack.extend(reversed(items))
        elif isinstance(value, (list, tuple)):
            stack.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(value)]))
    return None
