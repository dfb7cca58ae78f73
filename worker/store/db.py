"""Database access: engine set-up, migrations and the claim/lease primitives.

SQLite (the embedded default) and PostgreSQL are both first-class. On SQLite
every transaction starts with BEGIN IMMEDIATE so that concurrent worker
processes queue on the busy timeout instead of failing on a lock upgrade.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Engine,
    bindparam,
    case,
    create_engine,
    event,
    or_,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import BindParameter

from worker.store import hamming
from worker.store.models import Base

log = logging.getLogger(__name__)

MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")
# for this transaction only: its commit waits for the WAL to reach the disk
_FLUSH_WAIT = text("SET LOCAL synchronous_commit TO on")


def make_engine(url: str, pool_size: int = 5, redoable_commits: bool = False) -> Engine:
    """An engine for `url`. With `redoable_commits`, PostgreSQL commits without waiting
    for the WAL flush (synchronous_commit off for the connection, set as it opens: no
    statement per transaction). The flush's wait was the busiest state of the database at
    100,000 sources (docs/load.md). A server crash may then undo the last fraction of a
    second of commits, which the pipeline redoes (the poll finds its items again, the
    sweep re-sends the parse and the rules); SQLite commits this way already in WAL mode
    with synchronous=NORMAL (a power loss can undo the last commits)."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1] if "///" in url else ""
        file_db = bool(db_path) and db_path != ":memory:"
        if file_db:
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        # a file database gets a QueuePool, sized like PostgreSQL's; :memory: keeps its own
        sizes = {"pool_size": pool_size, "max_overflow": pool_size} if file_db else {}
        # no pre-ping: a SQLite connection has no server to lose, and the ping was one more
        # statement in every transaction (several per changed poll)
        engine = create_engine(url, connect_args={"timeout": 60}, **sizes)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            # takes effect only on a new, empty file (before WAL writes its header): lets
            # retention give pages back without a full VACUUM (worker/service/retention.py)
            cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()
            hamming.register_sqlite(dbapi_conn)

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    options = {}
    if redoable_commits:  # after the URL's own options, if it has any
        given = make_url(url).query.get("options")
        given = " ".join(given) if isinstance(given, tuple) else given
        options["options"] = f"{given or ''} -c synchronous_commit=off".strip()
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=options,
    )


class Store:
    """Owns the engine of one process; recreate it after a fork (see `dispose`)."""

    def __init__(self, url: str, pool_size: int = 5, redoable_commits: bool = False):
        """`redoable_commits`: a worker's store, whose work a database crash may undo
        because it is redone anyway (a poll, a parse, a match: see `make_engine`); its
        sends go through `durable_session`."""
        self.url = url
        self.redoable_commits = redoable_commits
        self.engine = make_engine(url, pool_size, redoable_commits)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def durable_session(self) -> Iterator[Session]:
        """A unit of work whose commit waits for the WAL flush even in a store whose other
        commits do not (`redoable_commits`): the claim of a delivery before it is sent
        and the record of its outcome. Its flush makes every earlier commit durable too
        (the WAL is written in order), so nothing leaves the system on a commit a crash
        could still undo, and a sent alert is never sent again after one."""
        with self.session() as session:
            if self.redoable_commits and self.is_postgres:
                session.execute(_FLUSH_WAIT)
            yield session

    def dispose(self) -> None:
        self.engine.dispose(close=False)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def upgrade(self) -> None:
        """Bring the schema to the newest migration; safe to call from several processes."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", MIGRATIONS)
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self._migration_lock() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[Any]:
        if self.is_postgres:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(7432001)"))
                try:
                    yield conn
                    conn.commit()
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(7432001)"))
                    conn.commit()
        else:
            db_path = self.url.split("///", 1)[-1]
            lock_path = Path(db_path + ".migrate.lock") if db_path != ":memory:" else None
            with contextlib.ExitStack() as stack:
                if lock_path:
                    fh = stack.enter_context(open(lock_path, "w"))
                    fcntl.flock(fh, fcntl.LOCK_EX)
                with self.engine.connect() as conn:
                    yield conn
                    conn.commit()

    def ping(self) -> None:
        """One round trip: raises when the database does not answer."""
        with self.session() as session:
            session.execute(text("SELECT 1"))

    def insert_ignore(self, model: Any) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING for this dialect (RETURNING gives None on conflict)."""
        return insert_ignore(model, postgres=self.is_postgres)

    def create_all(self) -> None:
        """Tests only: the schema without migrations (migrations are tested separately)."""
        Base.metadata.create_all(self.engine)


def on_postgres(session: Session) -> bool:
    """The dialect of the session's connection: where PostgreSQL and SQLite differ."""
    return session.get_bind().dialect.name == "postgresql"


def add_unless_duplicate(session: Session, row: Any) -> Any | None:
    """Add `row` in a savepoint; None (and the session unharmed) when a unique constraint
    says it is there already: how a second worker loses a race without an error."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row


def insert_ignore(model: Any, *, postgres: bool) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING (RETURNING gives None on conflict)."""
    insert = postgresql.insert if postgres else sqlite.insert
    return insert(model).on_conflict_do_nothing()


def rows_changed(session: Session, stmt: UpdateBase, params: dict[str, Any] | None = None) -> int:
    """How many rows an UPDATE or DELETE changed (`execute` is typed as returning a plain
    Result; for these statements it is a CursorResult)."""
    return cast("CursorResult[Any]", session.execute(stmt, params)).rowcount


def claim(
    session: Session, model: Any, row_id: Any, now: datetime, lease_seconds: float, *conditions: Any
) -> bool:
    """Take a lease on one row if nobody holds one; counts the attempt.

    A single conditional UPDATE: atomic on SQLite and PostgreSQL alike, so two
    workers (or a redelivered message) can never both own the row.
    """
    stmt = (
        update(model)
        .where(
            model.id == row_id,
            or_(model.claimed_until.is_(None), model.claimed_until < now),
            *conditions,
        )
        .values(claimed_until=now + timedelta(seconds=lease_seconds), attempts=model.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(session, stmt) == 1


def claim_statement(model: Any, *conditions: Any) -> Any:
    """The statement of `claim_row` for `model` and these fixed `conditions`, built once
    by its caller (its row id, time and lease are bound at execution): a claim per item
    and per article costs its execution, not its construction."""
    return (
        update(model)
        .where(
            model.id == bindparam("b_row_id"),
            unclaimed(model, bindparam("b_now")),
            *conditions,
        )
        .values(claimed_until=bindparam("b_until"), attempts=model.attempts + 1)
        .returning(model)
        .execution_options(synchronize_session=False)
    )


def claim_row(
    session: Session, statement: Any, row_id: Any, now: datetime, lease_seconds: float
) -> Any | None:
    """`claim`, and the claimed row read back in the same statement (UPDATE … RETURNING,
    SQLite 3.35+ and PostgreSQL; `statement` from `claim_statement`): the row, its
    attempts counted, as an object of the session; None when nobody's lease could be
    taken (done, held elsewhere, gone)."""
    until = now + timedelta(seconds=lease_seconds)
    params = {"b_row_id": row_id, "b_now": now, "b_until": until}
    return session.scalars(statement, params).one_or_none()


def unclaimed(model: Any, now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """No live lease on the row: never claimed, or its claim ran out (`now` may be bound at
    execution, for a statement built once)."""
    return or_(model.claimed_until.is_(None), model.claimed_until < now)


def defer(
    session: Session,
    model: Any,
    row_id: Any,
    until: datetime,
    *conditions: Any,
    give_back_attempt: bool = True,
) -> None:
    """Hold a row until `until` without it being anyone's failure: the lease keeps others
    off and, with `give_back_attempt`, the attempt its claim counted is returned."""
    values: dict[str, Any] = {"claimed_until": until}
    if give_back_attempt:
        values["attempts"] = case((model.attempts > 0, model.attempts - 1), else_=0)
    session.execute(update(model).where(model.id == row_id, *conditions).values(**values))


def mark_enqueued(session: Session, model: Any, ids: list[Any], now: datetime) -> None:
    """Note that messages for these rows were (re)sent now, so the sweep leaves them be."""
    if ids:
        session.execute(
            update(model)
            .where(model.id.in_(ids))
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
