"""The memo of feed bodies already read (worker/sources/unchanged.py)."""

from __future__ import annotations

from worker.sources.unchanged import BodyMemo, Seen, digest


def test_same_body_same_url_is_known_and_anything_else_is_not() -> None:
    memo = BodyMemo()
    body = digest(b"<rss>one</rss>")
    assert memo.same("s1", "http://a/feed", body) is None  # never read
    memo.remember("s1", Seen("http://a/feed", body, 600))
    seen = memo.same("s1", "http://a/feed", body)
    assert seen is not None and seen.ttl_seconds == 600
    assert memo.same("s1", "http://a/feed", digest(b"<rss>two</rss>")) is None  # changed body
    assert memo.same("s1", "http://b/feed", body) is None  # moved: read again
    assert memo.same("s2", "http://a/feed", body) is None  # another source
    memo.forget("s1")
    assert memo.same("s1", "http://a/feed", body) is None


def test_memo_keeps_only_the_newest_sources() -> None:
    memo = BodyMemo(size=2)
    body = digest(b"x")
    for source in ("a", "b", "c"):
        memo.remember(source, Seen("u", body, None))
    assert memo.same("a", "u", body) is None  # the oldest went first
    assert memo.same("b", "u", body) is not None and memo.same("c", "u", body) is not None
