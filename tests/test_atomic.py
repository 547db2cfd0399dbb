"""Atomic writes (`tokenmeter._atomic`): the one way tokenmeter writes a file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import tokenmeter as tm
from tokenmeter import _atomic
from tokenmeter._atomic import dumps_json, write_atomic, write_json_atomic


def _report() -> tm.Report:
    meter = tm.Meter(keep_records=True)
    with meter.track("job"):
        meter.record(model="m", input_tokens=3, output_tokens=2, cost_usd=0.5)
    return meter.report()


def test_writes_text_and_bytes(tmp_path: Path) -> None:
    """str is written UTF-8 encoded, bytes as they are; the written path comes back."""
    assert write_atomic(tmp_path / "a.txt", "héllo") == tmp_path / "a.txt"
    assert (tmp_path / "a.txt").read_bytes() == "héllo".encode()
    write_atomic(str(tmp_path / "b.bin"), b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]  # no temp left


def test_new_file_mode_follows_the_umask(tmp_path: Path) -> None:
    """A new file gets 0o666 minus the umask, as a plain open() gives it."""
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "f", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640


def test_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    """Overwriting a 0o600 file keeps it 0o600 (a private report stays private)."""
    target = tmp_path / "private.json"
    target.write_text("{}")
    target.chmod(0o600)
    write_atomic(target, "[]")
    assert (target.stat().st_mode & 0o777, target.read_text()) == (0o600, "[]")


def test_missing_directory_is_named(tmp_path: Path) -> None:
    """Writing into a directory that does not exist raises FileNotFoundError naming it."""
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match=f"the directory '{missing}' does not exist"):
        write_atomic(missing / "r.json", "x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _report().save(missing / "r.json")
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        write_atomic(tmp_path / "file" / "r.json", "x")


def test_long_target_name(tmp_path: Path) -> None:
    """A 255-character file name is saved: the temporary file's name does not overflow."""
    target = tmp_path / ("r" * 250 + ".json")
    _report().save(target)
    assert json.loads(target.read_text())["total"]["calls"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_saving_onto_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    """Report.save onto a symbolic link writes the file it points to; the link stays a link."""
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "usage.json"
    real.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    _report().save(link)
    assert link.is_symlink()
    assert os.readlink(link) == str(real)
    assert json.loads(real.read_text())["total"]["calls"] == 1
    dangling = tmp_path / "next.json"
    dangling.symlink_to(tmp_path / "real" / "new.json")
    write_atomic(dangling, "new")
    assert dangling.is_symlink()
    assert (tmp_path / "real" / "new.json").read_text() == "new"


def test_save_writes_strict_json(tmp_path: Path) -> None:
    """A NaN nested in a record's metadata is a ValueError naming it; the old file stays."""
    target = tmp_path / "r.json"
    target.write_text("old")
    meter = tm.Meter(keep_records=True)
    meter.record(model="m", input_tokens=1, output_tokens=1, metadata={"s": [float("nan")]})
    rep = meter.report()
    with pytest.raises(ValueError, match=r"records\[0\]\.metadata\.s\[0\] is nan"):
        rep.save(target, include_records=True)
    assert target.read_text() == "old"
    rep.save(target)  # without records there is nothing to refuse
    assert "NaN" not in target.read_text()


def test_dumps_json_names_the_place_of_infinity() -> None:
    """dumps_json: infinity deep in lists and dicts is named by its path; finite is fine."""
    with pytest.raises(ValueError, match=r"a\[1\]\.b is -inf, which JSON cannot hold"):
        dumps_json({"a": [0, {"b": float("-inf")}]})
    with pytest.raises(ValueError, match="the value is inf"):
        dumps_json(float("inf"))
    assert dumps_json({"a": 1.5}, indent=None) == '{"a": 1.5}'


def test_write_json_atomic_writes_nothing_on_bad_json(tmp_path: Path) -> None:
    """write_json_atomic refuses NaN before touching the file; good JSON ends with a newline."""
    target = tmp_path / "x.json"
    with pytest.raises(ValueError, match="v is nan"):
        write_json_atomic(target, {"v": float("nan")})
    assert not target.exists()
    write_json_atomic(target, {"v": 1})
    assert target.read_text() == '{\n  "v": 1\n}\n'


def test_failed_write_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure between writing and renaming leaves the old file whole and removes the temp."""
    target = tmp_path / "r.json"
    target.write_text("old")

    def boom(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(_atomic.os, "fsync", boom)
    with pytest.raises(OSError, match="disk gone"):
        write_atomic(target, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert target.read_text() == "old"


def test_a_fifo_is_written_through_not_replaced(tmp_path: Path) -> None:
    """Saving to a named pipe writes the text into the pipe; the pipe stays a pipe."""
    import stat
    import threading

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_atomic(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_symlink_loop_is_an_error_not_replaced(tmp_path: Path) -> None:
    """Saving onto a link in a loop raises OSError (ELOOP) as open() does; both links stay."""
    import errno

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(OSError) as info:
        write_atomic(a, "x")
    assert info.value.errno == errno.ELOOP
    assert (a.is_symlink(), b.is_symlink()) == (True, True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]
