"""Migration 0010: stored canonical URLs rewritten to their RFC 3986 form, so that a
story stored before the upgrade is still found by its URL after it (and not alerted a
second time), on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select, text

from tests.integration.test_migrations import upgrade_to
from worker.core.urls import canonical_url
from worker.store import items
from worker.store import models as m
from worker.store.db import Store

T = "'2026-01-01'"
SOURCE = (
    "INSERT INTO source (id, name, kind, url, every_seconds, enabled, next_fetch_at, "
    "consecutive_failures, permanent_failures, items_seen, created_at) VALUES "
    f"(1, 's', 'feed', 'https://x.test/', 60, true, {T}, 0, 0, 0, {T})"
)
# (id, the key stored by the old canonical_url, the key after the upgrade)
STORED = [
    (1, "https://x.test/%d8%a7", "https://x.test/%D8%A7"),
    (2, "https://münchen.test/a", "https://xn--mnchen-3ya.test/a"),
    (3, "https://x.test/a/../b", "https://x.test/a/../b"),  # /b is 4's key: 3 keeps its own
    (4, "https://x.test/b", "https://x.test/b"),  # already in the new form
    (7, "urn:newswatch:abc", "urn:newswatch:abc"),  # no link: not a URL
]


def test_stored_keys_move_to_the_new_form_and_old_stories_are_found(database_url):
    store = Store(database_url)
    upgrade_to(store, database_url, "0009")
    with store.engine.begin() as conn:
        conn.execute(text(SOURCE))
        for article_id, old, _ in STORED:
            conn.execute(
                text(
                    "INSERT INTO article (id, source_id, canonical_url, content_hash, title, "
                    "body, lead, authors, tags, rules_state, attempts, enqueued_at, "
                    f"created_at) VALUES (:id, 1, :url, :h, 'T', 'B', '', '[]', '[]', 'done', "
                    f"1, {T}, {T})"
                ),
                {"id": article_id, "url": old, "h": f"h{article_id}"},
            )
    store.upgrade()
    with store.session() as s:
        keys = dict(s.execute(select(m.Article.id, m.Article.canonical_url)).all())
        assert keys == {i: new for i, _, new in STORED}
        # what the parser asks for a story seen again after the upgrade: found, not new
        for article_id, old, _ in STORED[:3]:
            assert items.copy_of(s, canonical_url(old), "another text") in (article_id, 4)
    store.dispose()
