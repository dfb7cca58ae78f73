"""The metadata rules, each on small pages of our own: the title chosen by agreement,
site and publisher names refused as authors, bylines read as pages write them, and
dates from htmldate and dateparser when our own rules find none."""

from __future__ import annotations

from datetime import UTC, datetime

import lxml.html
import pytest

from worker.articles.byline import split_authors
from worker.articles.dates import TEXT_DATE, parse_date, published_fallback
from worker.articles.extract import extract_page
from worker.core.model import PageContent

BODY = "<p>" + "A plain sentence about the harbour and the strike. " * 20 + "</p>"


def page(head: str = "", top: str = "", url: str = "https://example.org/news/x") -> PageContent:
    html = f"<html><head>{head}</head><body><article>{top}{BODY}</article></body></html>"
    return extract_page(html, url)


# ---------------------------------------------------------------- titles


def test_title_agreement_beats_a_jsonld_headline_that_is_the_description() -> None:
    ld = '{"@type": "Article", "headline": "constitutional monarchy in Oceania"}'
    got = page(
        f'<script type="application/ld+json">{ld}</script><title>New Zealand - Wikipedia</title>',
        "<h1>New Zealand</h1>",
    )
    assert got.title == "New Zealand"


def test_title_not_the_blog_name_in_the_h1() -> None:
    got = page(
        '<meta property="og:title" content="Open flow for programmable logic devices">'
        "<title>Silicon Exposed: Open flow for programmable logic devices</title>",
        "<h1>Silicon Exposed</h1>",
    )
    assert got.title == "Open flow for programmable logic devices"


def test_title_never_the_site_name() -> None:
    got = page(
        '<meta property="og:title" content="The Harbour Blog">'
        '<meta property="og:site_name" content="The Harbour Blog">'
        "<title>Dock workers vote to end the strike - The Harbour Blog</title>"
    )
    assert got.title == "Dock workers vote to end the strike"


def test_title_site_name_from_the_domain_stripped_in_front() -> None:
    got = page(
        "<title>Example Times | Dock workers vote to end the strike</title>",
        url="https://www.exampletimes.com/a/1",
    )
    assert got.title == "Dock workers vote to end the strike"


def test_title_long_part_after_a_dash_is_kept() -> None:
    title = "Why the strike matters - and what comes next for the dock workers of the port"
    assert page(f"<title>{title}</title>").title == title


def test_title_space_separated_properties_and_dublin_core_first() -> None:
    got = page(
        '<meta property="og:title twitter:title" content="A title">'
        '<meta property="x:title dc:title" content="Preferred title">'
        "<title>Title element</title>"
    )
    assert got.title == "Preferred title"


def test_jsonld_inside_cdata_is_read() -> None:
    ld = (
        '<![CDATA[{"@type": "NewsArticle", "headline": "Dock workers vote to end the strike",'
        ' "datePublished": "2019-03-04T10:00:00Z", "author": {"@type": "Person",'
        ' "name": "Jane Doe"}}]]>'
    )
    got = page(f'<script type="application/ld+json">{ld}</script>')
    assert got.published == datetime(2019, 3, 4, 10, tzinfo=UTC)
    assert got.authors == ("Jane Doe",)


# ---------------------------------------------------------------- authors

HEADLINE = "<h1>Dock workers vote to end the strike</h1>"


def test_site_name_is_not_an_author() -> None:
    got = page(
        '<meta name="author" content="National Geographic">'
        '<meta property="og:site_name" content="National Geographic">',
        HEADLINE + "<p>By Jane Doe</p>",
    )
    assert got.authors == ("Jane Doe",)


def test_publisher_signature_from_the_domain_is_not_an_author() -> None:
    got = page(
        '<meta name="author" content="SPIEGEL ONLINE">',
        HEADLINE + '<a rel="author" href="/autor/anna">Anna Muster</a>',
        url="https://www.spiegel.de/politik/a-1.html",
    )
    assert got.authors == ("Anna Muster",)


def test_www_suffix_signs_a_publisher() -> None:
    got = page(
        '<meta name="author" content="Deutsche Welle (www.dw.com)">',
        HEADLINE + "<p>Von Max Mustermann</p>",
    )
    assert got.authors == ("Max Mustermann",)


def test_jsonld_publisher_name_is_not_an_author() -> None:
    ld = (
        '{"@type": "NewsArticle", "author": {"@type": "Organization", "name": "Harbour Daily"},'
        ' "publisher": {"@type": "Organization", "name": "Harbour Daily"}}'
    )
    got = page(f'<script type="application/ld+json">{ld}</script>', HEADLINE + "<p>By Jane Doe</p>")
    assert got.authors == ("Jane Doe",)


def test_person_owning_the_site_stays_an_author() -> None:
    ld = (
        '{"@type": "Article", "author": {"@type": "Person", "name": "Haki Benita"},'
        ' "publisher": {"@type": "Organization", "name": "Haki Benita"}}'
    )
    got = page(f'<script type="application/ld+json">{ld}</script>', url="https://hakibenita.com/x")
    assert got.authors == ("Haki Benita",)
    got = page('<meta name="author" content="Haki Benita">', url="https://hakibenita.com/x")
    assert got.authors == ("Haki Benita",)


def test_by_in_its_own_element() -> None:
    got = page(top=HEADLINE + '<p><span class="by">by</span> <a href="/a/jd">Jane Doe</a></p>')
    assert got.authors == ("Jane Doe",)


def test_date_before_by() -> None:
    got = page(top=HEADLINE + "<p>Tuesday 15 October 2019 by Bradley M. Kuhn</p>")
    assert got.authors == ("Bradley M. Kuhn",)


def test_author_element_name_without_job_title() -> None:
    top = (
        HEADLINE + '<div class="author"><a href="/author/bs">Ben Silverman</a>'
        "<div>Games Editor</div></div>"
    )
    assert page(top=top).authors == ("Ben Silverman",)


def test_itemprop_author_among_other_itemprops() -> None:
    top = HEADLINE + '<p itemprop="author creator">Corey Kilgannon</p>'
    assert page(top=top).authors == ("Corey Kilgannon",)


@pytest.mark.parametrize(
    "raw, names",
    [
        ("Jane Doe and John Roe", ("Jane Doe", "John Roe")),
        ("Jane Doe, John Roe & Ann Poe", ("Jane Doe", "John Roe", "Ann Poe")),
        ("Anna Muster und Max Mustermann", ("Anna Muster", "Max Mustermann")),
        ("Martin Untersinger (avec Damien Leloup et Morgane Tual)",
         ("Martin Untersinger", "Damien Leloup", "Morgane Tual")),
        ("Bradley M. Kuhn (http://ebb.org/bkuhn/)", ("Bradley M. Kuhn",)),
        ("肖春芳", ("肖春芳",)),
        ("the editors", ()),
    ],
)  # fmt: skip
def test_split_authors(raw: str, names: tuple[str, ...]) -> None:
    assert split_authors(raw) == names


# ---------------------------------------------------------------- dates


def test_htmldate_finds_what_our_rules_do_not() -> None:
    top = HEADLINE + '<abbr class="published" title="2019-03-04T10:00:00">4 March</abbr>'
    assert page(top=top).published == datetime(2019, 3, 4, tzinfo=UTC)


def test_a_modified_date_is_never_the_published_one() -> None:
    tree = lxml.html.document_fromstring(
        f'<html><body><h1>Headline here</h1><abbr class="published" title="2025-01-07">x</abbr>'
        f"{BODY}</body></html>"
    )
    modified = datetime(2025, 1, 7, 15, tzinfo=UTC)
    assert published_fallback(tree, "", None) == datetime(2025, 1, 7, tzinfo=UTC)
    assert published_fallback(tree, "", modified) is None
    got = page('<meta property="article:modified_time" content="2025-01-07T15:00:00Z">')
    assert got.modified == modified
    assert got.published is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2015-07-10 09:53:00 -0400", datetime(2015, 7, 10, 13, 53, tzinfo=UTC)),
        ("2015-07-10 09:53", datetime(2015, 7, 10, 9, 53, tzinfo=UTC)),
        ("15. Oktober 2019", datetime(2019, 10, 15, tzinfo=UTC)),
        ("5 marca 2020", datetime(2020, 3, 5, tzinfo=UTC)),
        ("3 mars 2021 14:05", datetime(2021, 3, 3, 14, 5, tzinfo=UTC)),
        ("7 januari 2018", datetime(2018, 1, 7, tzinfo=UTC)),
        ("5 songs 2017", None),
    ],
)
def test_parse_date_other_languages_and_iso(text: str, expected: datetime | None) -> None:
    assert parse_date(text) == expected


def test_month_names_of_other_languages_are_found_in_text() -> None:
    for text in ("Publicado el 5 de marzo de 2020", "Opublikowano 5 marca 2020", "7 januari 2018"):
        assert TEXT_DATE.search(text), text
    assert not TEXT_DATE.search("the top 5 songs 2017")
