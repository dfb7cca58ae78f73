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


# RFC 3986 section 6 normalisation, one class per row: each pair is two spellings of
# one resource, which must give one key (and so one article)
@pytest.mark.parametrize(
    ("a", "b"),
    [
        # dot segments (section 5.2.4)
        ("https://example.org/a/../b/./c", "https://example.org/b/c"),
        ("https://example.org/a/b/../../c", "https://example.org/c"),
        # percent-encoding case (6.2.2.1)
        ("https://example.org/%d8%a7%d9%84", "https://example.org/%D8%A7%D9%84"),
        # unreserved characters decoded (6.2.2.2)
        ("https://example.org/%7Euser/%41-%5F", "https://example.org/~user/A-_"),
        # a raw non-ASCII path and its UTF-8 escapes (IRI -> URI, RFC 3987 3.1)
        ("https://example.org/خبر", "https://example.org/%D8%AE%D8%A8%D8%B1"),
        # host case (6.2.2.1), scheme case
        ("HTTPS://News.EXAMPLE.org/x", "https://news.example.org/x"),
        # default port (6.2.3)
        ("https://example.org:443/x", "https://example.org/x"),
        ("http://example.org:80/x", "http://example.org/x"),
        # IDN and punycode (RFC 5891)
        ("https://münchen.example/x", "https://xn--mnchen-3ya.example/x"),
        ("https://MÜNCHEN.example/x", "https://xn--mnchen-3ya.example/x"),
    ],
)
def test_rfc3986_equivalent_spellings_give_one_key(a: str, b: str) -> None:
    assert canonical_url(a) == canonical_url(b)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.org/a/../b?utm_source=x&id=1", "https://example.org/b?id=1"),
        ("https://münchen.example/%7e", "https://xn--mnchen-3ya.example/~"),
        ("https://example.org/a%2Fb", "https://example.org/a%2Fb"),  # reserved: kept
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
    ],
)
def test_rfc3986_then_tracking_filter(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    "url", ["http://host:abc/x", "http://a\udcff.org/", "http://xn--a.example/", "http:///x", ""]
)
def test_urls_the_normaliser_refuses_do_not_raise(url: str) -> None:
    assert isinstance(canonical_url(url), str)


def test_canonical_url_is_idempotent() -> None:
    # the migration (0010) rewrites stored keys with it: a key in the new form stays
    for url in ("https://münchen.example/a/../%7e?b=2&a=1", "https://example.org/خبر"):
        once = canonical_url(url)
        assert canonical_url(once) == once
