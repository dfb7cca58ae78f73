"""Which of a worker's commits wait for the WAL flush on PostgreSQL (db.Store with
`redoable_commits`): a poll's, a parse's and a match's do not (a crash that undoes one
only means it is done again); a delivery's claim, made before its send, and the record
of its outcome do (Store.durable_session), so nothing leaves the system on a commit a
crash may still undo."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import event, text

from tests.helpers.pipeline import Clock, make_runtime, rss, run_all
from worker.bootstrap import Runtime
from worker.settings import Settings
from worker.store import models as m
from worker.store.db import Store

pytestmark = pytest.mark.postgres

SHOW = text("SHOW synchronous_commit")


def test_a_workers_commits_skip_the_flush_wait_but_durable_ones(postgres_url):
    store = Store(postgres_url, pool_size=1, redoable_commits=True)  # one connection
    try:
        with store.session() as session:
            assert session.scalar(SHOW) == "off"
        with store.durable_session() as session:
            assert session.scalar(SHOW) == "on"
        with store.session() as session:  # SET LOCAL ended with its transaction
            assert session.scalar(SHOW) == "off"
        with pytest.raises(RuntimeError), store.durable_session() as session:
            session.execute(text("CREATE TABLE t_redo (x int)"))
            raise RuntimeError("rolled back like any unit of work")
        with store.session() as session:
            assert session.scalar(text("SELECT to_regclass('t_redo')")) is None
    finally:
        store.engine.dispose()


def test_a_worker_runtime_has_such_a_store(tmp_path, postgres_url):
    env = {"DATABASE_URL": postgres_url, "NEWSWATCH_DATA_DIR": str(tmp_path)}
    store = Runtime.build(Settings.from_env(env)).store
    try:
        with store.session() as session:
            assert session.scalar(SHOW) == "off"
    finally:
        store.engine.dispose()


def test_other_stores_wait_for_every_flush_and_url_options_stay(postgres_url):
    plain = Store(postgres_url, pool_size=1)  # the CLI's: a command's change is durable
    given = Store(f"{postgres_url}?options=-c%20work_mem%3D7MB", 1, redoable_commits=True)
    try:
        with plain.session() as session, plain.durable_session() as other:
            assert session.scalar(SHOW) == other.scalar(SHOW) == "on"
        with given.session() as session:
            assert session.scalar(SHOW) == "off"
            assert session.scalar(text("SHOW work_mem")) == "7MB"
    finally:
        plain.engine.dispose()
        given.engine.dispose()


def test_sqlite_has_no_such_setting_and_commits_as_before(sqlite_url):
    store = Store(sqlite_url, redoable_commits=True)
    with store.durable_session() as session:
        session.execute(text("CREATE TABLE t_redo (x int)"))
        session.execute(text("INSERT INTO t_redo VALUES (1)"))
    with store.session() as session:
        assert session.scalar(text("SELECT x FROM t_redo")) == 1
    store.engine.dispose()


def _record_transactions(store: Store) -> list[list[str]]:
    """Every committed transaction's statements, in order."""
    done: list[list[str]] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def _statement(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        conn.info.setdefault("nw_statements", []).append(statement)

    @event.listens_for(store.engine, "commit")
    def _commit(conn: Any) -> None:
        done.append(conn.info.pop("nw_statements", []))

    @event.listens_for(store.engine, "rollback")
    def _rollback(conn: Any) -> None:
        conn.info.pop("nw_statements", None)

    return done


def _writes(transactions: list[list[str]], verb: str, table: str) -> list[list[str]]:
    pattern = re.compile(rf"\s*{verb} {table}\b")
    return [t for t in transactions if any(pattern.match(s) for s in t)]


def _durable(transaction: list[str]) -> bool:
    return any("synchronous_commit TO on" in s for s in transaction)


def test_the_pipeline_waits_for_the_flush_only_around_a_send(tmp_path, postgres_url, http_server):
    url = http_server.url("/a/1")
    feed = rss(("Alpha strikes", url))
    http_server.add("/feed.xml", feed, headers={"Content-Type": "application/rss+xml"})
    http_server.add("/hook", b"", status=204)
    config = f"""
sources:
  - name: wire
    feed: {http_server.url("/feed.xml")}
    every: 1m
watchlists:
  - name: alpha
    keywords: [Alpha]
    notify: [hook]
channels:
  - name: hook
    webhook: {http_server.url("/hook")}
fetch:
  allow_networks: [127.0.0.0/8]
  min_interval: 0
"""
    rt = make_runtime(tmp_path, postgres_url, config, Clock())
    transactions = _record_transactions(rt.store)
    try:
        assert len(run_all(rt)) == 1
    finally:
        rt.store.engine.dispose()
    # the hot path: the dispatch claim, the new item, the poll's record, the parse claim
    # and its article, the rules' claim and their matches and deliveries
    hot = [
        _writes(transactions, "UPDATE", m.Source.__tablename__),
        _writes(transactions, "INSERT INTO", m.Item.__tablename__),
        _writes(transactions, "UPDATE", m.Item.__tablename__),
        _writes(transactions, "INSERT INTO", m.Article.__tablename__),
        _writes(transactions, "UPDATE", m.Article.__tablename__),
        _writes(transactions, "INSERT INTO", m.Match.__tablename__),
        _writes(transactions, "INSERT INTO", m.Delivery.__tablename__),
    ]
    for found in hot:
        assert found and not any(_durable(t) for t in found), [t for t in found if _durable(t)]
    # the send's boundary: the claim before it, the outcome after it
    claims = _writes(transactions, "UPDATE", m.Delivery.__tablename__)
    attempts = _writes(transactions, "INSERT INTO", m.DeliveryAttempt.__tablename__)
    assert claims and attempts
    assert all(_durable(t) for t in claims + attempts)
