"""Migration 0007: the state enums as CHECK constraints, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from worker.core import states
from worker.store import models as m
from worker.store.db import MIGRATIONS, Store

T = "'2026-01-01'"
ROWS = (  # one row of each table with a checked column, and their foreign keys
    "INSERT INTO source (id, name, kind, url, every_seconds, enabled, next_fetch_at, "
    f"consecutive_failures, permanent_failures, items_seen, created_at) VALUES "
    f"(1, 's', 'feed', 'https://x.test/', 60, true, {T}, 0, 0, 0, {T})",
    "INSERT INTO article (id, source_id, canonical_url, content_hash, title, body, lead, "
    "authors, tags, rules_state, attempts, enqueued_at, created_at) VALUES "
    f"(1, 1, 'https://x.test/a', 'h', 'T', 'B', '', '[]', '[]', 'done', 1, {T}, {T})",
    "INSERT INTO item (id, source_id, entry_key, url, data, state, attempts, enqueued_at, "
    "created_at, article_id, outcome, outcome_detail) VALUES "
    f"(1, 1, 'k', 'u', '{{}}', 'parsed', 1, {T}, {T}, 1, 'matched', 'alerted w')",
    "INSERT INTO match (id, watchlist, article_id, config_version, hits, names, snippet, "
    f"highlights, state, created_at) VALUES (1, 'w', 1, 'v', '[]', '[]', '', '[]', 'alerted', {T})",
    "INSERT INTO story_alert (watchlist, story_id, match_id) VALUES ('w', 1, 1)",
    "INSERT INTO digest_batch (id, channel, due_at, state, size, attempts, next_attempt_at, "
    f"created_at) VALUES ('b1', 'c', {T}, 'sent', 1, 1, {T}, {T})",
    "INSERT INTO delivery (id, match_id, channel, state, kind, route, batch_id, attempts, "
    "next_attempt_at, enqueued_at, created_at) VALUES "
    f"('d1', 1, 'c', 'sent', 'alert', 'digest', 'b1', 1, {T}, {T}, {T})",
    f"INSERT INTO delivery_attempt (delivery_id, at, ok) VALUES ('d1', {T}, true)",
)
CHECKED = [  # (table, column, key column, key)
    ("source", "kind", "id", "1"),
    ("item", "state", "id", "1"),
    ("item", "outcome", "id", "1"),
    ("article", "rules_state", "id", "1"),
    ("match", "state", "id", "1"),
    ("delivery", "state", "id", "'d1'"),
    ("delivery", "kind", "id", "'d1'"),
    ("delivery", "route", "id", "'d1'"),
    ("digest_batch", "state", "id", "'b1'"),
]
ENUMS = {
    ("source", "kind"): states.SourceKind,
    ("item", "state"): states.ItemState,
    ("item", "outcome"): states.ItemOutcome,
    ("article", "rules_state"): states.RulesState,
    ("match", "state"): states.MatchState,
    ("delivery", "state"): states.DeliveryState,
    ("delivery", "kind"): states.DeliveryKind,
    ("delivery", "route"): states.DeliveryRoute,
    ("digest_batch", "state"): states.BatchState,
}


def upgrade_to(store: Store, url: str, revision: str) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    with store.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()


def insert_rows(store: Store) -> None:
    with store.engine.begin() as conn:
        for statement in ROWS:
            conn.execute(text(statement))


def assert_states_enforced(store: Store) -> None:
    for table, column, key, value in CHECKED:
        where = f"UPDATE {table} SET {column} = :v WHERE {key} = {value}"
        refused = pytest.raises(IntegrityError, match=f"ck_{table}_{column}|CHECK constraint")
        with refused, store.engine.begin() as conn:
            conn.execute(text(where), {"v": "bogus"})
        for state in ENUMS[table, column]:  # every value of the enum is accepted
            with store.engine.begin() as conn:
                conn.execute(text(where), {"v": state})
                conn.rollback()


def test_every_state_column_refuses_a_value_outside_its_enum(database_url):
    store = Store(database_url)
    store.upgrade()
    insert_rows(store)
    assert_states_enforced(store)
    with store.engine.begin() as conn:  # NULL is an item's outcome while on its way
        conn.execute(text("UPDATE item SET outcome = NULL WHERE id = 1"))
    with pytest.raises(IntegrityError), store.session() as s:
        s.add(m.DigestBatch(id="b2", channel="c", due_at=m.utcnow(), state="closed"))
    store.dispose()


def test_the_checks_match_the_enums():
    for (table, column), enum in ENUMS.items():
        (check,) = [
            c for c in m.Base.metadata.tables[table].constraints if c.name == f"ck_{table}_{column}"
        ]
        assert str(check.sqltext) == f"{column} IN ({', '.join(repr(s.value) for s in enum)})"


def test_upgrade_from_0006_keeps_the_rows_and_their_foreign_keys(database_url):
    store = Store(database_url)
    upgrade_to(store, database_url, "0006")
    insert_rows(store)
    store.upgrade()
    with store.session() as s:
        assert s.scalar(select(m.Item.outcome)) == "matched"
        assert s.scalar(select(m.Delivery.batch_id)) == "b1"
        assert s.scalar(select(m.StoryAlert.match_id)) == 1
        assert s.scalar(select(m.DeliveryAttempt.delivery_id)) == "d1"
        assert s.scalar(select(m.Article.body)) == "B"
    assert_states_enforced(store)
    # foreign keys still hold after the rebuild
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(text("DELETE FROM article WHERE id = 1"))
    if not store.is_postgres:  # enforcement is back on for the pooled connections
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    store.dispose()


def test_upgrade_to_0013_copies_each_articles_fingerprint_to_its_bands(database_url):
    store = Store(database_url)
    upgrade_to(store, database_url, "0012")
    with store.engine.begin() as conn:
        conn.execute(text(ROWS[0]))
        for n, fp in ((1, -5), (2, 2**62), (3, None)):
            conn.execute(
                text(
                    "INSERT INTO article (id, source_id, canonical_url, content_hash, title, body,"
                    " lead, authors, tags, rules_state, attempts, enqueued_at, created_at,"
                    f" fingerprint) VALUES ({n}, 1, 'https://x.test/{n}', 'h{n}', 'T', 'B', '',"
                    f" '[]', '[]', 'done', 1, {T}, {T}, :fp)"
                ),
                {"fp": fp},
            )
            for key in ("0:a", "9:b"):
                conn.execute(
                    text("INSERT INTO fingerprint_band (band_key, article_id) VALUES (:k, :n)"),
                    {"k": key, "n": n},
                )
    store.upgrade()
    with store.session() as s:
        rows = s.execute(
            select(m.FingerprintBand.article_id, m.FingerprintBand.fingerprint).order_by(
                m.FingerprintBand.article_id
            )
        ).all()
    assert rows == [(1, -5), (1, -5), (2, 2**62), (2, 2**62), (3, None), (3, None)]
    store.dispose()
