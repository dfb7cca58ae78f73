"""The story lookup's query (StoryQueries.candidates), on SQLite and PostgreSQL: the
distance is taken in SQL, the window starts at its first article, closest come first."""

from __future__ import annotations

import random
from datetime import timedelta

from worker.articles import stories
from worker.store import items
from worker.store import models as m
from worker.store.db import Store
from worker.store.hamming import hamming
from worker.store.models import utcnow


def _article(session, source_id: int, n: int, fp: int, created) -> int:
    row = m.Article(
        source_id=source_id,
        canonical_url=f"https://x.test/{n}",
        content_hash=f"h{n}",
        title=f"t{n}",
        body=f"b{n}",
        fingerprint=fp,
        story_id=None,
        created_at=created,
        enqueued_at=created,
    )
    session.add(row)
    session.flush()
    items.add_bands(session, row.id, fp, stories.band_keys(fp))
    return row.id


def _flip(fp: int, bits: list[int]) -> int:
    u = stories.to_unsigned(fp)
    for b in bits:
        u ^= 1 << b
    return stories.to_signed(u)


def test_sql_hamming_is_the_fingerprint_distance(database_url):
    from sqlalchemy import literal, select

    rng = random.Random(3)
    pairs = [(stories.to_signed(rng.getrandbits(64)), stories.to_signed(rng.getrandbits(64)))]
    pairs += [(-1, 0), (-(2**63), 2**63 - 1), (5, 5), (-7, 7)]
    pairs += [(a, _flip(a, rng.sample(range(64), k))) for a, _ in pairs for k in (1, 16, 63)]
    store = Store(database_url)
    with store.session() as s:
        for a, b in pairs:
            got = s.scalar(select(hamming(literal(a, m.BigInteger()), literal(b, m.BigInteger()))))
            assert got == stories.distance(a, b), (a, b)


def test_candidates_are_close_in_the_window_and_closest_first(database_url):
    store = Store(database_url)
    store.upgrade()
    rng = random.Random(7)
    now = utcnow()
    fp = stories.to_signed(rng.getrandbits(64))
    with store.session() as s:
        source = m.Source(name="s", kind="feed", url="https://x.test/f", every_seconds=60)
        s.add(source)
        s.flush()
        # before the window: as close as can be, and still not a candidate
        _article(s, source.id, 0, fp, now - stories.NEAR_DUP_WINDOW - timedelta(hours=1))
        # in the window, stored in time order (ids grow with time), each with bits flipped
        # from the second band on (so each shares the first band's key): 17, 16, 9, 3 bits
        ids = {
            k: _article(s, source.id, k, _flip(fp, list(range(8, 8 + k))), now - timedelta(hours=k))
            for k in (17, 16, 9, 3)
        }
        far = _article(s, source.id, 99, stories.to_signed(~stories.to_unsigned(fp)), now)
        me = _article(s, source.id, 100, fp, now)
    with store.session() as s:
        found = items.StoryQueries(s).candidates(
            stories.band_keys(fp), me, now - stories.NEAR_DUP_WINDOW, fp, 16
        )
    assert [row[0] for row in found] == [ids[3], ids[9], ids[16]]
    assert far not in {row[0] for row in found}
    assert all(stories.distance(fp, row[1]) <= 16 for row in found)


def test_a_changed_article_is_found_by_its_new_fingerprint(database_url):
    """Bands carry the fingerprint: rewriting an article's bands must carry the new one."""
    store = Store(database_url)
    store.upgrade()
    now = utcnow()
    old, new = 0x0F0F_0F0F_0F0F_0F0F, stories.to_signed(0xF0F0_F0F0_F0F0_F0F0)
    with store.session() as s:
        source = m.Source(name="s", kind="feed", url="https://x.test/f", every_seconds=60)
        s.add(source)
        s.flush()
        changed = _article(s, source.id, 1, old, now)
        items.drop_bands(s, changed)
        items.add_bands(s, changed, new, stories.band_keys(new))
        me = _article(s, source.id, 2, new, now)
    with store.session() as s:
        lookup = items.StoryQueries(s)
        since = now - stories.NEAR_DUP_WINDOW
        assert [r[0] for r in lookup.candidates(stories.band_keys(new), me, since, new, 16)] == [
            changed
        ]
        assert lookup.candidates(stories.band_keys(old), me, since, old, 16) == []
