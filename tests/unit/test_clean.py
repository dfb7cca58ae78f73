"""Clean, bounded text and dates before storing (worker/core/clean.py), and how feed
entries become item data and articles under those bounds (worker/articles/normalize.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from worker.articles.normalize import build_article
from worker.core import clean
from worker.core.model import FeedEntry, ParsedFeed, RefusedEntry
from worker.sources.entries import content_digest, entry_data, feed_items
from worker.sources.feeds import _convert_all, _entry, html_to_text


def test_control_characters_and_lone_surrogates_are_removed():
    raw = "a\x00b\x01c\x1fd\x7fe\x80f\x9fg\ud800h\udfffi\tj\nk\r\nl\rm"
    assert clean.clean_text(raw) == "abcdefghi\tj\nk\nl\nm"
    # the result is storable anywhere: valid UTF-8, no NUL
    clean.clean_text(raw).encode("utf-8")
    assert clean.clean_text(None) == "" and clean.clean_text(42) == ""
    # letters, format characters and emoji are left alone
    assert clean.clean_text("Zürich \u200b 😀 \u05d0") == "Zürich \u200b 😀 \u05d0"


def test_cap_cuts_on_a_word_boundary_with_an_ellipsis():
    text = "word " * 1000
    out = clean.cap(text, 100)
    assert len(out) <= 100 and out.endswith(clean.ELLIPSIS)
    assert out[:-1].endswith("word")  # never half a word
    assert clean.cap("short", 100) == "short"
    # one long word: cut anyway, still within the limit
    assert len(clean.cap("x" * 500, 100)) == 100


def test_bounded_list_caps_count_and_each_and_drops_empties():
    out = clean.bounded_list(["a", "", "\x00", "a", *[f"t{i}" for i in range(100)]], 10, 5)
    assert out == ("a", "t0", "t1", "t2", "t3")
    assert clean.bounded_list(["y" * 50], 10, 5)[0].endswith(clean.ELLIPSIS)


@pytest.mark.parametrize(
    "value",
    [
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=14))),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1899, 12, 31, tzinfo=UTC),
        datetime(2200, 1, 1, tzinfo=UTC),
        "2024-01-01",
        None,
        -62135596800,
    ],
)
def test_dates_out_of_range_or_not_dates_are_none(value):
    assert clean.bounded_date(value) is None


def test_dates_in_range_are_utc():
    east = datetime(2024, 5, 1, 10, tzinfo=timezone(timedelta(hours=2)))
    assert clean.bounded_date(east) == datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert clean.bounded_date(datetime(2024, 5, 1)) == datetime(2024, 5, 1, tzinfo=UTC)


def _entry_of(**kw) -> FeedEntry:
    base = dict(
        entry_key="g-1",
        url="https://site.example/a?utm_source=rss",
        title="Talks resume",
        summary="Talks resumed today.",
        content_html="<p>Talks resumed today in the capital.</p>",
    )
    return FeedEntry(**{**base, **kw})


def test_huge_fields_are_capped_in_item_data_and_article():
    e = _entry_of(
        title="Headline " * 1_000_000,  # 9 MB
        summary="s " * 100_000,
        content_html="<p>" + "body " * 100_000 + "</p>",
        authors=tuple(f"Author {i} " + "x" * 500 for i in range(100)),
        tags=tuple(f"tag{i}" + "y" * 500 for i in range(500)),
        url="https://site.example/" + "p" * 3000,
    )
    data = entry_data(e)
    assert len(data["title"]) <= clean.MAX_TITLE and data["title"].endswith(clean.ELLIPSIS)
    assert len(data["summary"]) <= clean.MAX_SUMMARY
    assert len(data["authors"]) == clean.MAX_AUTHORS
    assert all(len(a) <= clean.MAX_AUTHOR for a in data["authors"])
    assert len(data["tags"]) == clean.MAX_TAGS and all(
        len(t) <= clean.MAX_TAG for t in data["tags"]
    )
    assert data["url"] is None  # a URL is never cut: an overlong one counts as absent
    assert len(data["entry_key"]) <= 1000
    article = build_article(data, "src")
    assert len(article.title) <= clean.MAX_TITLE
    assert len(article.body) <= clean.MAX_BODY and article.body.endswith(clean.ELLIPSIS)
    assert len(article.lead) <= clean.MAX_SUMMARY
    assert len(article.url) <= clean.MAX_URL


def test_same_guid_different_links_are_different_items():
    a = entry_data(_entry_of(url="https://site.example/a"))
    b = entry_data(_entry_of(url="https://site.example/b"))
    assert a["entry_key"] != b["entry_key"]


def test_cosmetic_changes_keep_the_key_and_real_changes_make_a_new_version():
    first = entry_data(_entry_of())
    cosmetic = entry_data(
        _entry_of(
            url="https://site.example/a?utm_source=email&fbclid=zz",
            title="  TALKS   resume ",
            summary="Talks\n resumed  today.",
            content_html="<div>Talks resumed <b>today</b> in the capital.</div>",
        )
    )
    assert cosmetic["entry_key"] == first["entry_key"]
    changed = entry_data(_entry_of(summary="Talks resumed today; PMF walked out."))
    assert changed["entry_key"] != first["entry_key"]
    assert changed["identity"] == first["identity"]
    assert content_digest(first) != content_digest(changed)


def test_an_entry_that_cannot_be_converted_is_refused_alone():
    # a raw entry whose tags are not a list: converting it raises, the others are read
    raws = [{"id": "bad", "link": "https://x.example/1", "tags": 5}, {"id": "ok", "title": "Fine"}]
    entries, refused = _convert_all(raws, _entry, "")
    assert [e.entry_key for e in entries] == ["ok"]
    assert refused[0].entry_key == "bad" and "TypeError" in refused[0].reason
    assert refused[0].url == "https://x.example/1"
    # the same at the next stage: entry_data raising for one entry
    bad = replace(_entry_of(entry_key="bad"), authors=None)  # type: ignore[arg-type]
    feed = ParsedFeed("t", (bad, _entry_of(entry_key="ok")), refused=refused)
    items = feed_items(feed)
    assert [bool(i.get("refused")) for i in items] == [True, False, True]
    assert "TypeError" in items[0]["refused"]
    assert items[0]["entry_key"] != items[2]["entry_key"] != items[1]["entry_key"]


def test_refused_entry_keys_are_stable():
    r = RefusedEntry("k", None, "why")
    assert feed_items(ParsedFeed("t", (), refused=(r,))) == feed_items(
        ParsedFeed("t", (), refused=(r,))
    )


def test_deeply_nested_html_keeps_its_text():
    nested = "before" + "<div>" * 5000 + "deep PMF" + "</div>" * 5000 + "after"
    text = html_to_text(nested)
    assert "deep PMF" in text and "after" in text
    assert html_to_text("<script>" * 3 + "x") == ""
