"""Tests for the server-owned, size-rotated service log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainyard._serving.logfile import LogRedirect, RotatingFile, rotated_name
from trainyard.exceptions import ConfigError


def _files(path: Path, backups: int) -> list[Path]:
    return [
        p for p in [path, *(rotated_name(path, i) for i in range(1, backups + 2))] if p.exists()
    ]


def test_rotates_at_line_boundaries_and_keeps_n_backups(tmp_path: Path) -> None:
    path = tmp_path / "service.log"
    out = RotatingFile(path, max_bytes=1024, backups=2)
    lines = [f"line {i:05d} ".encode() + b"x" * 40 + b"\n" for i in range(200)]
    for i in range(0, 200, 7):  # writes of several lines, like pipe reads
        out.write(b"".join(lines[i : i + 7]))
    out.close()
    files = _files(path, 2)
    assert files == [path, rotated_name(path, 1), rotated_name(path, 2)]  # .3 was never kept
    for f in files:
        data = f.read_bytes()
        assert len(data) <= 1024 and data.endswith(b"\n")  # whole lines only
    kept = b"".join(f.read_bytes() for f in reversed(files))
    assert kept == b"".join(lines)[-len(kept) :]  # the newest lines, in order, none cut


def test_existing_big_file_is_rotated_before_the_first_write(tmp_path: Path) -> None:
    path = tmp_path / "service.log"
    path.write_bytes(b"old\n" * 1000)
    out = RotatingFile(path, max_bytes=1024, backups=1)
    out.write(b"new\n")
    out.close()
    assert path.read_bytes() == b"new\n"
    assert rotated_name(path, 1).read_bytes() == b"old\n" * 1000


def test_no_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "service.log"
    out = RotatingFile(path, max_bytes=1024, backups=0)
    for _ in range(100):
        out.write(b"y" * 99 + b"\n")
    out.close()
    assert len(path.read_bytes()) <= 1024 and not rotated_name(path, 1).exists()


def test_a_line_longer_than_a_file_is_split_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "service.log"
    out = RotatingFile(path, max_bytes=1024, backups=5)
    out.write(b"z" * 3000 + b"\n")
    out.close()
    total = b"".join(f.read_bytes() for f in reversed(_files(path, 5)))
    assert total == b"z" * 3000 + b"\n"


def test_unwritable_log_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--log-file"):
        LogRedirect.start(tmp_path / "missing" / "service.log", max_bytes=1024, backups=1)


_CHILD = """
import os, sys
from pathlib import Path
from trainyard._serving.logfile import LogRedirect, finish_active_log
LogRedirect.start(Path(sys.argv[1]), max_bytes=4096, backups=3)
for i in range(500):
    print(f"out {i:04d}")
    print(f"err {i:04d}", file=sys.stderr)
os.write(2, b"raw fd 2\\n")
finish_active_log()
os._exit(3)  # like an init() failure: no interpreter shutdown
"""


def test_everything_written_before_os_exit_is_in_the_log(tmp_path: Path) -> None:
    path = tmp_path / "service.log"
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3 and proc.stdout == "" and proc.stderr == ""
    text = "".join(f.read_text() for f in reversed(_files(path, 3)))
    lines = text.splitlines()
    assert lines[-1] == "raw fd 2"
    assert [ln for ln in lines if ln.startswith("out")][-1] == "out 0499"
    assert [ln for ln in lines if ln.startswith("err")][-1] == "err 0499"
    assert all(len(f.read_bytes()) <= 4096 for f in _files(path, 3))
