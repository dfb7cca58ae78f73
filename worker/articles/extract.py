"""HTML page -> PageContent: the article a reader would agree with, and what the page says of it.

The steps, each in its module: the body (`body`: trafilatura, readability-lxml when
trafilatura finds little, then furniture lines removed); the metadata in markup
(`metadata`: JSON-LD, then OpenGraph / article / Dublin Core meta tags; title and
language); what the top of the page says (`byline`: authors, dates near the byline
or in <time>); then the URL's date (`dates`).

Hostile input: input beyond MAX_HTML_BYTES is cut before parsing; lxml caps tree
depth at 256; binary and text-free pages raise ExtractionError. Nothing else
escapes: any other failure inside the parsers becomes ExtractionError too.
"""

from __future__ import annotations

import re

import lxml.etree as etree
import lxml.html

from worker.articles.body import (
    block_texts,
    continuations,
    drop_boilerplate,
    drop_header_lines,
    readability_text,
    trafilatura_doc,
)
from worker.articles.byline import (
    author_elements,
    byline_authors,
    dates_in_text,
    first_people,
    header_texts,
    people,
    split_authors,
    time_elements,
)
from worker.articles.dates import date_in_url, published_fallback
from worker.articles.furniture import drop_furniture, drop_hidden_metadata
from worker.articles.metadata import (
    Meta,
    meta_jsonld,
    meta_og,
    page_language,
    page_title,
    strip_site,
)
from worker.articles.text import collapse_ws, word_count
from worker.core.encoding import decode_html
from worker.core.errors import PermanentError
from worker.core.model import PageContent
from worker.core.urls import canonical_url

# Real article pages are < 2 MB; 5 MB keeps every one of them whole while
# bounding parse time and memory (lxml needs ~10x the input size).
MAX_HTML_BYTES = 5_000_000
# Below this many words trafilatura probably missed the article: ask readability.
_SHORT_BODY_WORDS = 120


class ExtractionError(PermanentError, ValueError):
    """The page has no article: empty, binary, unparsable or without text. Permanent:
    the same page fails the same way again. Still a ValueError, as it always was
    (tests/unit/test_extract.py asserts it)."""

    kind = "extraction"


def _to_text(html: str | bytes, content_type: str | None) -> str:
    if isinstance(html, bytes | bytearray):
        head = bytes(html[:4096])
        if not head.strip():
            raise ExtractionError("empty page")
        if _looks_binary(head):
            raise ExtractionError("binary content, not HTML")
        text = decode_html(bytes(html[:MAX_HTML_BYTES]), content_type)
    elif isinstance(html, str):
        text = html[:MAX_HTML_BYTES]
    else:
        raise ExtractionError(f"unsupported input type {type(html).__name__}")
    if not text.strip():
        raise ExtractionError("empty page")
    if _looks_binary(text[:4096].encode("utf-8", "replace")):
        raise ExtractionError("binary content, not HTML")
    return text


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 9 or 13 < b < 32)
    return control > len(head) * 0.05


_XML_DECL = re.compile(r"^\s*<\?xml[^>]*>", re.I)


def _parse(text: str) -> lxml.html.HtmlElement:
    # lxml refuses str input that carries an XML encoding declaration; feed bytes.
    data = _XML_DECL.sub("", text, count=1).encode("utf-8", "replace")
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)
    try:
        tree = lxml.html.document_fromstring(data, parser=parser)
    except (etree.ParserError, ValueError, TypeError) as exc:
        raise ExtractionError(f"unparsable HTML: {exc}") from exc
    if tree is None:
        raise ExtractionError("unparsable HTML")
    return tree


# ---------------------------------------------------------------- entry point


def extract_page(html: str | bytes, url: str, content_type: str | None = None) -> PageContent:
    """The article on an HTML page, or ExtractionError when the page has none."""
    text = _to_text(html, content_type)
    try:
        return _extract(text, url)
    except ExtractionError:
        raise
    except (RecursionError, MemoryError, ValueError, TypeError, etree.LxmlError) as exc:
        raise ExtractionError(f"extraction failed: {type(exc).__name__}: {exc}") from exc


def _page_meta(tree: lxml.html.HtmlElement, url: str, host: str) -> tuple[Meta, list[str]]:
    """What the page says of its article, with title, authors and dates chosen among the
    sources; and the names the site goes by (never an author)."""
    ld, og = meta_jsonld(tree), meta_og(tree)
    sites = [n for n in (og.site_name, ld.site_name, ld.publisher) if n]
    ld_title = ld.title
    meta = ld
    meta.fill(og)
    header = header_texts(tree)
    meta.title = page_title(tree, ld_title, og.titles, sites, host)
    tp, tm = time_elements(tree)
    near, plain, text_modified = dates_in_text(header)
    meta.modified = meta.modified or tm or text_modified
    meta.published = (
        meta.published
        or tp
        or near
        or published_fallback(tree, url, meta.modified)
        or plain
        or date_in_url(url)
    )
    meta.authors = first_people(
        (
            lambda: split_authors(ld.authors),
            lambda: split_authors(og.authors),
            lambda: byline_authors(header),
            lambda: author_elements(tree),
        ),
        sites,
        host,
        ld.persons,
    )
    return meta, sites


def _extract(text: str, url: str) -> PageContent:
    tree = _parse(text)
    host = re.sub(r"^[a-z]+://([^/:]+).*$", r"\1", url or "", flags=re.I)
    meta, sites = _page_meta(tree, url, host)
    title, authors = meta.title, meta.authors
    published, modified = meta.published, meta.modified
    language = page_language(tree, meta)

    drop_hidden_metadata(tree)  # read above; in the text it is noise
    doc = trafilatura_doc(tree, url)
    paragraphs = block_texts(doc.body) if doc is not None and doc.body is not None else []
    original = tree  # bare_extraction worked on a copy of it
    paragraphs = continuations(original, paragraphs)
    if sum(word_count(p) for p in paragraphs) < _SHORT_BODY_WORDS:
        alt = readability_text(text)
        if sum(word_count(p) for p in alt) > 2 * sum(word_count(p) for p in paragraphs):
            paragraphs = alt
    paragraphs = drop_furniture(original, paragraphs, url, title)
    paragraphs = drop_boilerplate(paragraphs)
    paragraphs = drop_header_lines(paragraphs, title, authors)
    body = "\n\n".join(paragraphs)
    if not body.strip():
        raise ExtractionError("no article text found")

    if doc is not None:
        meta.fill(
            Meta(
                title=doc.title or "",
                authors=split_authors(doc.author or ""),
                image=doc.image,
                lead=doc.description or "",
                tags=tuple(doc.tags or ()),
                section=(doc.categories or [None])[0],
            )
        )
        authors = authors or people(meta.authors, sites, host)
        title = title or strip_site(meta.title, meta.site_name or doc.sitename or "", host)
    lead = collapse_ws(meta.lead)
    if lead and collapse_ws(body[: len(lead) + 20]).lower().startswith(lead.lower()[:80]):
        lead = ""  # the standfirst is the first paragraph: not distinct from the body
    return PageContent(
        body=body,
        title=title,
        authors=authors,
        published=published,
        modified=modified,
        language=language,
        tags=tuple(dict.fromkeys(t.strip() for t in meta.tags if t.strip()))[:30],
        section=meta.section,
        canonical_url=canonical_url(url, meta.canonical) if url else meta.canonical,
        image_url=meta.image,
        lead=lead,
    )
