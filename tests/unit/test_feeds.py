"""Feed bytes -> entries, walked over the corpus in tests/data/feeds/expected.yaml."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml

from worker.articles.normalize import build_article
from worker.sources.entries import entry_data
from worker.sources.feeds import FeedError, html_to_text, page_links, parse_feed

DATA = Path(__file__).resolve().parents[1] / "data" / "feeds"
EXPECTED = yaml.safe_load((DATA / "expected.yaml").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feed_corpus(name):
    want = EXPECTED[name]
    feed = parse_feed((DATA / name).read_bytes(), None, want.get("base_url", ""))
    assert feed.title == want["title"]
    if "ttl_seconds" in want:
        assert feed.ttl_seconds == want["ttl_seconds"]
    if want.get("warning"):
        assert feed.warning
    if "refused" in want:
        assert len(feed.refused) == want["refused"], feed.refused
    assert len(feed.entries) >= want.get("min_entries", len(want.get("entries", [])))
    for entry, exp in zip(feed.entries, want.get("entries", []), strict=False):
        for key, value in exp.items():
            if key in ("published", "updated"):
                want_date = datetime.fromisoformat(value) if value is not None else None
                assert getattr(entry, key) == want_date, (key, entry.title)
            elif key == "entry_key_prefix":
                assert entry.entry_key.startswith(value)
            elif key == "content_text":
                assert html_to_text(entry.content_html or "") == value
            elif key in ("authors", "tags"):
                assert list(getattr(entry, key)) == value
            else:
                assert getattr(entry, key) == value, key


def test_entries_without_ids_get_stable_keys():
    body = (DATA / "rss20.xml").read_bytes()
    assert parse_feed(body).entries[1].entry_key == parse_feed(body).entries[1].entry_key


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"<html><body>not a feed</body></html>",
        b"\x00\xff\xfe binary",
        b"{not json",
        b'{"version": "1"}',
        b"[]",
        b"<?xml version='1.0'?><unclosed",
    ],
)
def test_not_a_feed_is_a_feed_error(body):
    with pytest.raises(FeedError):
        parse_feed(body)


def test_billion_laughs_and_external_entities_do_not_expand(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">' for i in range(10))
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE rss [{laughs}<!ENTITY xxe SYSTEM "file://{secret}">]>'
        '<rss version="2.0"><channel><title>t</title><item><title>&l9;</title>'
        "<description>&xxe;</description><link>https://e.org/1</link></item></channel></rss>"
    ).encode()
    try:
        feed = parse_feed(bomb)
    except FeedError:
        return  # refusing the document is fine too
    text = " ".join(f"{e.title} {e.summary}" for e in feed.entries)
    assert "TOP-SECRET" not in text
    assert len(text) < 10_000


def test_html_to_text_keeps_paragraphs_and_tolerates_garbage():
    assert html_to_text("<p>One &amp; two</p><p>Three<br>four</p>") == "One & two\n\nThree\n\nfour"
    assert html_to_text("<<<>>>&&&;") is not None
    assert html_to_text("plain  text\u00a0here") == "plain text here"


def test_page_links_follow_pattern_and_resolve():
    html = """<html><body>
      <a href="/articles/1">One</a> <a href="/articles/1#comments">One again</a>
      <a href="https://other.example/articles/9">Elsewhere</a>
      <a href="/about">About</a> <a href="javascript:alert(1)">x</a> <a href="mailto:a@b">m</a>
      <a href="articles/2">Two (relative)</a>
    </body></html>"""
    base = "https://site.example/"
    assert page_links(html, base, r"/articles/\d+$") == [
        "https://site.example/articles/1",
        "https://other.example/articles/9",
        "https://site.example/articles/2",
    ]
    # without a pattern: same-site links only
    assert "https://other.example/articles/9" not in page_links(html, base, None)
    assert page_links("", base, None) == []


def test_feed_entry_becomes_article_with_canonical_url():
    feed = parse_feed((DATA / "rss20.xml").read_bytes(), None, "https://news.example/feed.xml")
    article = build_article(entry_data(feed.entries[0]), "world")
    assert article.url == "https://news.example/world/troops-leave"  # tracking parameter gone
    assert article.body.startswith("The defence ministry said on Thursday that troops would leave.")
    assert article.authors == ("Jane Roe",)
    assert article.source == "world"
    assert len(article.content_hash) == 64
    # no link: a stable URN stands in for the URL
    other = build_article(entry_data(feed.entries[1]), "world")
    assert other.url.startswith("urn:newswatch:sha256:")
