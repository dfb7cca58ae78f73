"""Telling a full disk's errors from others, with the real errors of a real full
filesystem (a small tmpfs; needs root to mount, skipped elsewhere)."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from worker.service.diskspace import DiskWatch, SpaceCheck, free_bytes, full_paths
from worker.tracking.diskfull import is_disk_full


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    path = tmp_path / "small"
    path.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)],
                           capture_output=True, text=True)  # fmt: skip
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(path: Path) -> None:
    with open(path / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)


def test_the_errors_of_a_full_disk_are_known(full_disk: Path):
    db = full_disk / "t.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x TEXT)"))
    _fill(full_disk)
    assert full_paths([full_disk], 1) == [full_disk] and free_bytes(full_disk) == 0

    with pytest.raises(OperationalError) as sa_error, engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": "y" * 200_000})
    assert is_disk_full(sa_error.value)  # SQLAlchemy's wrapper of SQLITE_FULL
    with pytest.raises(OSError) as os_error:
        (full_disk / "more").write_bytes(b"x" * 100_000)
    assert os_error.value.errno == errno.ENOSPC and is_disk_full(os_error.value)
    try:  # and through a chain, as a task sees it
        try:
            raise os_error.value
        except OSError as exc:
            raise RuntimeError("while storing") from exc
    except RuntimeError as chained:
        assert is_disk_full(chained)
    engine.dispose()

    (full_disk / "filler").unlink()
    assert full_paths([full_disk], 1) == []


@pytest.mark.parametrize(
    "exc",
    [
        sqlite3.OperationalError("database is locked"),
        OSError(errno.EACCES, "Permission denied"),
        redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"),
        ValueError("database or disk is full"),  # only sqlite3's own error says so
    ],
)
def test_other_errors_are_not_a_full_disk(exc: BaseException):
    assert not is_disk_full(exc)


def test_redis_refusing_writes_is_a_full_disk():
    assert is_disk_full(redis.ResponseError("MISCONF Errors writing to the AOF file: No space"))


def test_space_checks_on_a_roomy_folder(tmp_path: Path):
    assert SpaceCheck([tmp_path], 1).full() == []
    assert SpaceCheck([tmp_path], 1 << 62).full() == [tmp_path]  # nobody has 4 EiB free
    watch = DiskWatch([tmp_path, tmp_path / "sub"], 1)  # one filesystem: watched once
    assert watch.paths == [tmp_path]
