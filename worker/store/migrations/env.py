"""Alembic environment: runs on the connection the Store hands over (see Store.upgrade)."""

import contextlib
from collections.abc import Iterator

from alembic import context
from sqlalchemy import Connection, create_engine

from worker.store.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:  # plain `alembic` CLI use
        url = context.config.get_main_option("sqlalchemy.url")
        if url is None:
            raise SystemExit(
                "alembic: set sqlalchemy.url in alembic.ini (or use `newswatch db upgrade`)"
            )
        engine = create_engine(url)
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
        return
    _run(connection)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE on SQLite
        compare_type=True,
    )
    with _sqlite_foreign_keys_off(connection), context.begin_transaction():
        context.run_migrations()


@contextlib.contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """Batch mode rebuilds a SQLite table by copy, drop and rename; with foreign keys
    enforced, dropping a table other rows refer to fails. The pragma is ignored inside
    a transaction, so it is set on the driver's connection before the migrations'
    transaction begins, and restored after it ends (the rows copied are the same rows)."""
    if connection.dialect.name != "sqlite" or connection.in_transaction():
        yield
        return
    raw = connection.connection.driver_connection
    assert raw is not None  # a connection in use holds its driver's connection
    enforced = raw.execute("PRAGMA foreign_keys").fetchone()[0]
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")


run_migrations_online()
