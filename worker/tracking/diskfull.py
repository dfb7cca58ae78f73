"""Whether an error is a full disk's, through any wrapping: SQLite "database or disk is
full" (SQLITE_FULL), PostgreSQL `disk_full` (SQLSTATE 53100), ENOSPC / EDQUOT / EFBIG
from the OS, and Redis refusing writes ("MISCONF"). Work that meets one waits
(worker/tracking/failures.py) instead of spending an attempt."""

from __future__ import annotations

import errno
import sqlite3
import sys

import redis.exceptions
from sqlalchemy.exc import DBAPIError

_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_SQLITE_FULL = 13  # sqlite3's SQLITE_FULL result code
_PG_DISK_FULL = "53100"


def is_disk_full(exc: BaseException | None) -> bool:
    """True when `exc`, or an exception it wraps, is a full disk's error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _one_is_disk_full(exc):
            return True
        # SQLAlchemy keeps the DBAPI error in `.orig`; Python chains the rest
        wrapped = exc.orig if isinstance(exc, DBAPIError) else None
        exc = wrapped or exc.__cause__ or exc.__context__
    return False


def _one_is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _ERRNOS:
        return True
    if isinstance(exc, sqlite3.Error):
        # getattr: the driver sets sqlite_errorcode only on errors SQLite itself returned
        code = getattr(exc, "sqlite_errorcode", None)
        return code == _SQLITE_FULL or "database or disk is full" in str(exc)
    if isinstance(exc, _pg_errors()):
        return getattr(exc, "sqlstate", None) == _PG_DISK_FULL
    # Redis cannot persist and refuses writes (an external server; ours never does this)
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith("MISCONF")


def _pg_errors() -> tuple[type[Exception], ...]:
    """psycopg's base error, if psycopg is loaded. Not imported here: it costs every
    process about 9 MB (docs/load.md, "Memory at idle"), and on SQLite nothing loads it;
    an error of psycopg's can only come from a process that has."""
    psycopg = sys.modules.get("psycopg")
    return (psycopg.Error,) if psycopg is not None else ()
