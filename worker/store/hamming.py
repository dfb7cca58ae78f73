"""Hamming distance of two 64-bit fingerprints in SQL, so that the story lookup returns
only the close ones (worker/articles/stories.py) instead of every band-sharing row.

PostgreSQL (14+) counts the bits of the XOR itself; SQLite has no bit count, so its
connections get a deterministic function (`register_sqlite`, from worker/store/db.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

_MASK = (1 << 64) - 1
SQLITE_NAME = "nw_hamming64"


class hamming(FunctionElement[int]):  # lower case: reads like the SQL functions of func
    """hamming(a, b): bits in which the BIGINTs a and b differ; NULL if either is."""

    type = BigInteger()
    inherit_cache = True


@compiles(hamming, "postgresql")
def _postgresql(element: hamming, compiler: Any, **kw: Any) -> str:
    a, b = list(element.clauses)
    return f"bit_count(int8send({compiler.process(a, **kw)} # {compiler.process(b, **kw)}))"


@compiles(hamming)
def _default(element: hamming, compiler: Any, **kw: Any) -> str:
    return f"{SQLITE_NAME}({compiler.process(element.clauses, **kw)})"


def _distance(a: int | None, b: int | None) -> int | None:
    if a is None or b is None:
        return None
    return ((a ^ b) & _MASK).bit_count()


def register_sqlite(dbapi_conn: Any) -> None:
    dbapi_conn.create_function(SQLITE_NAME, 2, _distance, deterministic=True)
