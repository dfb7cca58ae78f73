from __future__ import annotations

import pytest

from worker.core.urls import canonical_url, content_hash


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://WWW.Example.ORG:443/a/B?x=1#frag", "https://www.example.org/a/B?x=1"),
        ("http://example.org:80/", "http://example.org/"),
        ("http://example.org:8080/p", "http://example.org:8080/p"),
        ("https://example.org", "https://example.org/"),
        (
            "https://example.org/a?utm_source=rss&utm_medium=feed&id=7&fbclid=x&gclid=y",
            "https://example.org/a?id=7",
        ),
        ("https://example.org/a?mc_cid=1&mc_eid=2&b=2&a=1", "https://example.org/a?a=1&b=2"),
        ("https://example.org/a?_ga=1&msclkid=2&ref_src=twsrc", "https://example.org/a"),
    ],
)
def test_canonical_url_normalizes(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_declared_canonical_used_on_same_site() -> None:
    amp = "https://amp.example.co.uk/news/story-1/amp?utm_source=x"
    main = "https://www.example.co.uk/news/story-1"
    assert canonical_url(amp, main) == main
    assert canonical_url("https://m.example.org/s/1", "https://www.example.org/s/1#top") == (
        "https://www.example.org/s/1"
    )


@pytest.mark.parametrize(
    "declared",
    ["https://evil.example.com/s/1", "javascript:alert(1)", "/relative/path", "", None],
)
def test_declared_canonical_ignored_elsewhere(declared: str | None) -> None:
    assert canonical_url("https://www.example.org/s/1?b=1", declared) == (
        "https://www.example.org/s/1?b=1"
    )


def test_other_registrable_domain_on_same_suffix_is_ignored() -> None:
    assert canonical_url("https://news.bbc.co.uk/a", "https://www.itv.co.uk/a") == (
        "https://news.bbc.co.uk/a"
    )


def test_content_hash_ignores_case_and_whitespace() -> None:
    a = content_hash("Port Strike", "Dock workers walked out.\n\nTraffic halted.")
    b = content_hash("  port   strike ", "dock workers WALKED out. Traffic\thalted.")
    assert a == b
    assert len(a) == 64 and int(a, 16) >= 0


def test_content_hash_differs_on_text_and_on_title_body_split() -> None:
    base = content_hash("Port strike", "Dock workers walked out.")
    assert base != content_hash("Port strike", "Dock workers stayed in.")
    assert base != content_hash("Port", "strike Dock workers walked out.")
