"""The feed-gap rule (worker/sources/gaps.py), case by case: what is a gap, what is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.sources import gaps
from worker.sources.gaps import Visible, Window

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


def entry(
    i: int, *, new: bool = True, dated: bool = True, guid: str = "g", article: int | None = None
) -> dict:
    """Entry `i` (dated i hours after T0) showing article `article` (default: i)."""
    a = i if article is None else article
    return {
        "entry_key": f"{guid}-{i} https://example.org/a/{a} #{a:016x}",
        "url": f"https://example.org/a/{a}?utm_source=rss",
        "published": (T0 + timedelta(hours=i)).isoformat() if dated else None,
        "new": new,
    }


def visible(entries: list[dict]) -> list[Visible]:
    return gaps.visible_entries(entries, {e["entry_key"] for e in entries if e["new"]})


def previous(entries: list[dict]) -> Window:
    return gaps.window_of(visible(entries), NOW - timedelta(hours=3))


def test_a_window_past_the_newest_seen_entry_is_a_gap_with_its_span():
    before = previous([entry(i) for i in range(10)])
    gap = gaps.judge(before, visible([entry(i) for i in range(20, 30)]), NOW)
    assert gap is not None and gap.basis == "dates"
    assert gap.last_seen_at == T0 + timedelta(hours=9)
    assert gap.oldest_visible_at == T0 + timedelta(hours=20)
    assert gap.previous_poll_at == NOW - timedelta(hours=3)
    assert "11.0 h between" in gap.describe() and "3.0 h ago" in gap.describe()


def test_what_is_never_a_gap():
    before = previous([entry(i) for i in range(10)])
    jump = [entry(i) for i in range(20, 30)]
    assert gaps.judge(None, visible(jump), NOW) is None  # a first poll
    assert gaps.judge(before, visible(jump[:2]), NOW) is None  # too small a window
    one_seen = [*jump[:-1], entry(29, new=False)]
    assert gaps.judge(before, visible(one_seen), NOW) is None  # overlaps what was seen
    # rewritten GUIDs, same articles (link and content digest), whatever their dates
    rewritten = [entry(i, guid="other") for i in range(10)]
    assert gaps.judge(before, visible(rewritten), NOW) is None
    restamped = [entry(i + 20, guid="other", article=i) for i in range(10)]  # fresh dates
    assert gaps.judge(before, visible(restamped), NOW) is None
    # all new and none seen, but the feed reaches back before the newest seen entry
    older = [entry(i, guid="x", article=1000 + i) for i in range(5, 15)]
    assert gaps.judge(before, visible(older), NOW) is None


def test_undated_feeds_gap_only_on_a_full_window():
    before = previous([entry(i, dated=False) for i in range(8)])
    assert before.newest_at is None
    short = visible([entry(i, dated=False) for i in range(100, 105)])
    assert gaps.judge(before, short, NOW) is None
    full = gaps.judge(before, visible([entry(i, dated=False) for i in range(100, 108)]), NOW)
    assert full is not None and full.basis == "window"
    # a long usual window: 20 all-new entries count as full whatever came before
    long_before = previous([entry(i, dated=False) for i in range(50)])
    twenty = visible([entry(i, dated=False) for i in range(100, 120)])
    assert gaps.judge(long_before, twenty, NOW) is not None


def test_refused_entries_say_nothing_and_tokens_are_bounded():
    entries = [entry(i) for i in range(300)] + [{"entry_key": "x", "refused": "bad", "new": True}]
    win = gaps.window_of(visible(entries), NOW)
    assert win.size == 300 and len(win.tokens) <= gaps.MAX_TOKENS
    # a link the URL parser refuses still gives a token, never an exception
    assert gaps.entry_tokens({"url": "http://[::1", "entry_key": "k"})
