"""Article extraction: data-driven pages, metadata accuracy, date rules, hostile input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from worker.articles.dates import parse_date
from worker.articles.extract import MAX_HTML_BYTES, ExtractionError, extract_page
from worker.core.encoding import decode_html
from worker.core.model import PageContent

DATA = Path(__file__).resolve().parent.parent / "data" / "extract"
CASES = sorted(p.stem for p in DATA.glob("*.json"))
META_FIELDS = ("title", "authors", "published")


def _load(name: str) -> tuple[PageContent, dict]:
    expected = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    page = extract_page((DATA / f"{name}.html").read_bytes(), expected["url"])
    return page, expected


def _actual(page: PageContent, field: str) -> object:
    value = getattr(page, field)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


@pytest.mark.parametrize("name", CASES)
def test_page(name: str) -> None:
    page, expected = _load(name)
    assert page.body.startswith(expected["body_starts"]), page.body[:200]
    assert page.body.endswith(expected["body_ends"]), page.body[-200:]
    for furniture in expected["body_excludes"]:
        assert furniture not in page.body
    assert "\n\n" in page.body  # paragraphs separated by blank lines
    for field in ("title", "authors", "published", "modified", "language", "section", "tags",
                  "canonical_url", "image_url", "lead"):  # fmt: skip
        if field in expected:
            assert _actual(page, field) == expected[field], field
    for value in (page.published, page.modified):
        assert value is None or value.tzinfo == UTC


def test_metadata_accuracy() -> None:
    """Title, author and published date right on >= 90% of the pages that state them."""
    right = total = 0
    misses = []
    for name in CASES:
        page, expected = _load(name)
        for field in META_FIELDS:
            if expected.get(field):
                total += 1
                if _actual(page, field) == expected[field]:
                    right += 1
                else:
                    misses.append(f"{name}.{field}")
    accuracy = right / total
    print(f"metadata accuracy: {right}/{total} = {accuracy:.3f} over {len(CASES)} pages; {misses}")
    assert len(CASES) >= 20
    assert accuracy >= 0.9, misses


def test_seed_teasers_and_dates() -> None:
    page, _ = _load("seed-article")
    assert "Mujahedin" not in page.body and "HRW" not in page.body
    assert page.published == datetime(2017, 11, 30, tzinfo=UTC)
    assert page.modified == datetime(2017, 12, 2, 12, 42, tzinfo=UTC)


def test_metadata_date_beats_text_date() -> None:
    """The page's own structured metadata outranks dates written in the page."""
    html = (DATA / "seed-article.html").read_text(encoding="utf-8")
    html = html.replace(
        "</head>",
        '<meta property="article:published_time" content="2017-12-02T09:00:00+00:00"></head>',
    )
    page = extract_page(html, "https://www.iranpolicywatch.example/a")
    assert page.published == datetime(2017, 12, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dec 02, 2017", datetime(2017, 12, 2, tzinfo=UTC)),
        ("Friday, 30 November 2017", datetime(2017, 11, 30, tzinfo=UTC)),
        ("Saturday, 02 December 2017 12:42", datetime(2017, 12, 2, 12, 42, tzinfo=UTC)),
        ("2017-12-02T12:42:00+02:00", datetime(2017, 12, 2, 10, 42, tzinfo=UTC)),
        ("Nov. 19, 2019 5:30 p.m. EST", datetime(2019, 11, 19, 22, 30, tzinfo=UTC)),
        ("2. Dezember 2017 12:42", datetime(2017, 12, 2, 12, 42, tzinfo=UTC)),
        ("4. März 2019", datetime(2019, 3, 4, tzinfo=UTC)),
        ("1er décembre 2017", datetime(2017, 12, 1, tzinfo=UTC)),
        ("30 de noviembre de 2017", datetime(2017, 11, 30, tzinfo=UTC)),
        ("5 de março de 2020", datetime(2020, 3, 5, tzinfo=UTC)),
        ("3 marzo 2021, 14:05", datetime(2021, 3, 3, 14, 5, tzinfo=UTC)),
        ("12 maart 2019", datetime(2019, 3, 12, tzinfo=UTC)),
        ("not a date", None),
        ("", None),
    ],
)
def test_parse_date(text: str, expected: datetime | None) -> None:
    assert parse_date(text) == expected


# ---------------------------------------------------------------- hostile input

ARTICLE = "<p>" + "A plain sentence about the harbour and the strike. " * 20 + "</p>"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        "   \n\t ",
        b"\x00\x01\x02\x03" * 1000,
        bytes(range(256)) * 200,
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000,
        "<html><head><title>x</title></head><body></body></html>",
        "<html><body><script>var a = 1;</script><style>p{}</style></body></html>",
        "<<<<>>>></////>",
    ],
)
def test_pages_without_article_raise(body: str | bytes) -> None:
    with pytest.raises(ExtractionError):
        extract_page(body, "https://example.org/x")


def test_extraction_error_is_a_value_error() -> None:
    assert issubclass(ExtractionError, ValueError)


def test_deeply_nested_tags_do_not_crash() -> None:
    html = "<html><body>" + "<div>" * 10_000 + ARTICLE + "</div>" * 10_000 + "</body></html>"
    try:
        page = extract_page(html, "https://example.org/deep")
    except ExtractionError:
        return
    assert isinstance(page.body, str)


def test_huge_input_is_truncated_not_fatal() -> None:
    html = "<html><body><article><h1>Big</h1>" + ARTICLE * 30_000 + "</article></body></html>"
    assert len(html) > 20_000_000
    try:
        page = extract_page(html.encode(), "https://example.org/big")
    except ExtractionError:
        return
    assert len(page.body) <= MAX_HTML_BYTES


def test_broken_encoding_is_replaced_not_raised() -> None:
    html = b"<html><head><meta charset='utf-8'><title>T</title></head><body><article>"
    html += ARTICLE.encode() + b"\xff\xfe\xc3\x28 broken \xe2\x82" + ARTICLE.encode()
    html += b"</article></body></html>"
    page = extract_page(html, "https://example.org/enc", "text/html; charset=utf-8")
    assert "harbour" in page.body


def test_unknown_charset_falls_back() -> None:
    html = "<html><body><article>" + ARTICLE + "</article></body></html>"
    page = extract_page(html.encode(), "https://example.org/u", "text/html; charset=klingon")
    assert "harbour" in page.body


# ---------------------------------------------------------------- decoding


def test_decode_header_beats_meta() -> None:
    body = "<meta charset='utf-8'><p>café</p>".encode("latin-1")
    assert "café" in decode_html(body, "text/html; charset=ISO-8859-1")


def test_decode_meta_charset() -> None:
    body = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251"><p>'
    body_bytes = body.encode() + "Привет мир".encode("cp1251") + b"</p>"
    assert "Привет мир" in decode_html(body_bytes)


def test_decode_detects_without_declaration() -> None:
    text = "<p>" + "Les élèves étudièrent à l'école près de la forêt. " * 20 + "</p>"
    assert "élèves" in decode_html(text.encode("utf-8"))
    assert "élèves" in decode_html(text.encode("cp1252"))


def test_decode_bom_and_invalid_bytes() -> None:
    assert decode_html(b"\xef\xbb\xbf<p>ok</p>") == "<p>ok</p>"
    assert "\ufffd" in decode_html(b"<p>\xff\xfe bad</p>", "text/html; charset=utf-8")
