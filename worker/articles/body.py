"""The article's text: trafilatura's main content (readability-lxml when it finds little),
then site-independent cleanup of furniture lines (print/share buttons, "Tagged under",
"Published in …", "Last modified on …", related-story teasers, newsletter and cookie
boxes)."""

from __future__ import annotations

import re

import lxml.etree as etree
import lxml.html
import trafilatura

from worker.articles.byline import BYLINE, is_furniture
from worker.articles.dates import TEXT_DATE
from worker.articles.text import collapse_ws, text_of, word_count

_FURNITURE_LINE = re.compile(
    r"^(?:print|print this( article| page)?|e-?mail|email this|share( this)?( article| story)?|"
    r"tweet|pin it|whatsapp|facebook|twitter|linkedin|reddit|copy link|"
    r"tagged under.*|tags?:.*|topics?:.*|filed under.*|published in .{1,60}|"
    r"(?:last )?(?:modified|updated) (?:on|at)? ?.{0,60}|"
    r"external links?|related (?:articles?|stories|posts|content|coverage)|"
    r"read (?:more|next).{0,60}|"
    r"more from .{1,40}|you (?:may|might) also like.*|recommended( for you)?|"
    r"advertisement|sponsored( content)?|sign up .{0,80}newsletter.*|"
    r"subscribe to .{0,60}|.{0,40}cookies?.{0,80}(?:accept|consent|policy).*|"
    r"(?:\d+ )?comments?|leave a (?:comment|reply)|click here .{0,60}|"
    r"(?:image|photo|picture)(?: credit)?:.{0,80}|copyright ©.*|© .{0,80}|"
    r"follow .{1,60} on (?:facebook|twitter|instagram|youtube|linkedin|tiktok)\b.*|"
    # A byline's cue word left alone once the extractor dropped the author's markup.
    r"(?:written |posted )?(?:by|von|par|por|door))\W*$",
    re.I,
)
# Headings after which a page's body is over: everything below is furniture.
_END_MARKER = re.compile(
    r"^(?:tagged under|external links?|related (?:articles?|stories|posts|content)|"
    r"more (?:stories|articles) from .*|read more|you (?:may|might) also like.*|"
    r"recommended (?:for you|stories|articles)|comments?|leave a (?:comment|reply)|"
    r"share this(?: article| story)?:?|about the author)\W*$",
    re.I,
)


_CUE = re.compile(r"^(?:by|von|par|por|door)\s+")
_NAMES = re.compile(r"\s*(?:,|&|\band\b)\s*")


def block_texts(body: etree._Element) -> list[str]:
    out: list[str] = []
    for el in body:
        if not isinstance(el.tag, str):
            continue
        if el.tag == "list":
            items = [text_of(i) for i in el.iter("item")]
            out.extend(i for i in items if i)
        elif el.tag == "table":
            rows = [" ".join(text_of(c) for c in r.iter("cell")) for r in el.iter("row")]
            out.extend(r.strip() for r in rows if r.strip())
        else:
            text = text_of(el)
            if text:
                out.append(text)
        # Loose text after a block (a heading followed by text not wrapped in <p>) is
        # kept by the extractor as the block's tail: it is a paragraph of its own.
        tail = " ".join((el.tail or "").split())
        if tail:
            out.append(tail)
    return out


def drop_boilerplate(paragraphs: list[str]) -> list[str]:
    out: list[str] = []
    n = len(paragraphs)
    for i, p in enumerate(paragraphs):
        # Trailing furniture section: only trusted in the last third of the text.
        if _END_MARKER.match(p) and i >= n * 2 / 3 and out:
            break
        if word_count(p) <= 14 and _FURNITURE_LINE.match(p):
            continue
        out.append(p)
    return out


def _key(text: str) -> str:
    return collapse_ws(text).lower()[:80]


def continuations(original: lxml.html.HtmlElement, paragraphs: list[str]) -> list[str]:
    """Add article text that sits in sibling containers of the one the extractor chose.

    Many sites cut one article into several body blocks with the same tag and
    class (with ads between them); extractors often keep only the first block.
    """
    if len(paragraphs) < 2:
        return paragraphs
    seen = {_key(p) for p in paragraphs}
    last = _key(paragraphs[-1])
    container = None
    for el in original.iter("p"):
        if _key(text_of(el)) == last:
            container = el.getparent()
            break
    if container is None or not container.get("class"):
        return paragraphs
    siblings = [
        c
        for c in original.iter(container.tag)
        if c.get("class") == container.get("class") and not is_furniture(c)
    ]
    if len(siblings) < 2 or len(siblings) > 20:
        return paragraphs
    out = list(paragraphs)
    for c in siblings[siblings.index(container) + 1 :]:
        # Paragraphs only: lists in these blocks are mostly "more stories" links.
        texts = list(dict.fromkeys(text_of(p) for p in c.iter("p", "h2", "h3")))
        texts = [t for t in texts if t and _key(t) not in seen]
        long = [t for t in texts if word_count(t) >= 25]
        if not long or sum(word_count(t) for t in long) < 0.6 * sum(word_count(t) for t in texts):
            continue
        out.extend(texts)
        seen.update(_key(t) for t in texts)
    return out


def drop_header_lines(
    paragraphs: list[str], title: str, authors: tuple[str, ...] = ()
) -> list[str]:
    """Drop the title, byline, author and date lines an extractor kept above the first
    paragraph (an author's name is a line of its own when the page marks it up inline)."""
    names = {a.lower() for a in authors if a.strip()}
    start = 0
    for p in paragraphs[:4]:
        short = word_count(p) <= 12
        is_title = bool(title) and p.lower() == title.lower()
        is_date = short and bool(TEXT_DATE.search(p)) and word_count(TEXT_DATE.sub("", p)) <= 5
        parts = [n for n in _NAMES.split(_CUE.sub("", p.lower())) if n]
        is_author = short and bool(parts) and all(n in names for n in parts)
        if not (is_title or (short and BYLINE.match(p)) or is_date or is_author):
            break
        start += 1
    return paragraphs[start:]


def readability_text(html: str) -> list[str]:
    try:
        from readability import Document  # imported lazily: only needed on short bodies

        summary = Document(html).summary(html_partial=True)
        tree = lxml.html.fragment_fromstring(summary, create_parent="div")
    except Exception:
        return []
    blocks = tree.xpath(".//p|.//h2|.//h3|.//h4|.//li|.//blockquote[not(.//p)]|.//pre")
    return [t for t in (text_of(b) for b in blocks) if t]


def trafilatura_doc(tree: lxml.html.HtmlElement, url: str, precision: bool = False):
    try:
        return trafilatura.bare_extraction(
            tree,
            url=url,
            # Our own metadata reading replaces trafilatura's (and its costly htmldate pass).
            with_metadata=False,
            include_comments=False,
            include_tables=True,
            favor_precision=precision,
            deduplicate=False,
        )
    except (RecursionError, ValueError, TypeError, AttributeError, etree.LxmlError):
        return None
