"""What the top of an article page says: the byline's authors and the dates written near
it or in <time> elements.

A date written next to the byline beats a bare date line elsewhere in the header
(often the site's "today" line); a date introduced by "Last modified"/"Updated" is
the modification date, never the publication date.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime

import lxml.etree as etree
import lxml.html

from worker.articles.dates import MODIFIED_CUE, PUBLISHED_CUE, TEXT_DATE, parse_date
from worker.articles.metadata import fold, is_site_name
from worker.articles.text import collapse_ws, text_of, word_count

_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "nav", "footer", "aside"})
_FURNITURE_ATTR = re.compile(
    r"(^|[\s_-])(nav|menu|footer|sidebar|widget|related|comment|topbar|top-bar|masthead|"
    r"breadcrumb|cookie|newsletter|promo|advert|ad|ads|share|social|trending|popular)($|[\s_-])",
    re.I,
)
BYLINE = re.compile(
    r"^\s*(?i:(?:written\s+|posted\s+|words\s+|story\s+|reporting\s+)?(?:by|von|par|por|door)[:\s]+)"
    r"((?:[A-Z][\w'’.\-]*\.?\s*){1,4}(?:(?:,|and|&)\s*(?:[A-Z][\w'’.\-]*\.?\s*){1,4}){0,4})",
    re.U,
)


def is_furniture(el: etree._Element) -> bool:
    attrs = f"{el.get('class') or ''} {el.get('id') or ''} {el.get('role') or ''}"
    return bool(_FURNITURE_ATTR.search(attrs)) and el.tag not in {"body", "html", "article"}


def header_texts(tree: lxml.html.HtmlElement, limit: int = 60) -> list[tuple[str, etree._Element]]:
    """Short text nodes from the article's title onward, skipping furniture, in page order."""
    body = tree.find("body")
    if body is None:
        return []
    h1 = next(body.iter("h1"), None)
    started = h1 is None
    out: list[tuple[str, etree._Element]] = []

    def walk(el: etree._Element, depth: int) -> bool:
        nonlocal started
        if not isinstance(el.tag, str) or el.tag in _SKIP_TAGS or depth > 60:
            return False
        if el is h1:
            started = True
        elif is_furniture(el):
            return False
        if started and el.text and el.text.strip():
            out.append((collapse_ws(el.text), el))
        for child in el:
            if walk(child, depth + 1):
                return True
            if started and child.tail and child.tail.strip():
                out.append((collapse_ws(child.tail), el))
        return len(out) >= limit

    walk(body, 0)
    return out


def dates_in_text(texts: list[tuple[str, etree._Element]]) -> tuple[datetime | None, ...]:
    """(byline-adjacent, first plain, modified) dates among header texts."""
    byline_at = next((i for i, (t, _) in enumerate(texts) if BYLINE.match(t)), None)
    after, near, plain, modified = None, None, None, None
    for i, (text, el) in enumerate(texts):
        if word_count(text) > 40:
            continue
        for m in TEXT_DATE.finditer(text):
            dt = parse_date(m.group(0))
            if dt is None:
                continue
            before = text[: m.start()]
            prev = texts[i - 1][0] if i and not before.strip() else ""
            if MODIFIED_CUE.search(before) or (prev and MODIFIED_CUE.search(prev)):
                modified = modified or dt
                continue
            cue = PUBLISHED_CUE.search(before) or (prev and PUBLISHED_CUE.search(prev))
            attrs = f"{el.get('class') or ''} {el.get('itemprop') or ''}".lower()
            if byline_at is not None and 0 <= i - byline_at <= 2:
                after = after or dt  # the date written right after the byline
            elif (byline_at is not None and 0 < byline_at - i <= 2) or cue or "created" in attrs:
                near = near or dt
            plain = plain or dt
    return after or near, plain, modified


def time_elements(tree: lxml.html.HtmlElement) -> tuple[datetime | None, datetime | None]:
    published = modified = None
    for el in tree.iter("time"):
        value = el.get("datetime") or el.get("content")
        if not value:
            continue
        dt = parse_date(value)
        if dt is None:
            continue
        label = f"{el.get('class') or ''} {el.get('itemprop') or ''} {text_of(el)[:60]}".lower()
        parent = el.getparent()
        if parent is not None:
            label += f" {parent.get('class') or ''} {(parent.text or '')[:40]}".lower()
        if re.search(r"modif|updat|edited", label):
            modified = modified or dt
        else:
            published = published or dt
    return published, modified


# "By" alone in its element, the name in the next one: <span>by</span> <a>Name</a>
_BYLINE_LABEL = re.compile(
    r"^(?:written\s+|posted\s+|words\s+|story\s+|reporting\s+)?(?:by|von|par|por|door)\W*$",
    re.I,
)
# "Tuesday 15 October 2019 by Name": the date first
_LEADING_DATE = re.compile(rf"^\s*(?:{TEXT_DATE.pattern})[\s,|•·–-]*", re.I)


def byline_authors(texts: list[tuple[str, etree._Element]]) -> tuple[str, ...]:
    for i, (text, _el) in enumerate(texts[:40]):
        if _BYLINE_LABEL.match(text) and i + 1 < len(texts):
            text = f"{text} {texts[i + 1][0]}"
        m = BYLINE.match(text) or BYLINE.match(_LEADING_DATE.sub("", text, count=1))
        if m:
            names = split_authors(m.group(1))
            if names:
                return names
    return ()


def _token(attr: str, word: str) -> str:
    return f'contains(concat(" ", normalize-space(@{attr}), " "), " {word} ")'


def author_elements(tree: lxml.html.HtmlElement) -> tuple[str, ...]:
    for xpath in (
        './/*[@rel="author"]',
        f".//*[{_token('itemprop', 'author')}]",
        f".//*[{_token('class', 'author')}]",
        './/*[contains(@class, "byline")]',
    ):
        for el in tree.xpath(xpath)[:3]:
            # the whole element, else its first link: the name without the job title
            # that often follows it ("Ben Silverman Games Editor")
            link = next(el.iter("a"), None)
            for text in (text_of(el), text_of(link) if link is not None else ""):
                names = split_authors(text)
                if names:
                    return names
    return ()


_AUTHOR_JUNK = re.compile(
    r"^(by|written by|posted by|author|authors|and|staff|admin|editor|update[sd]?)\b[:\s]*", re.I
)
_NOT_A_NAME = re.compile(
    r"[@/<>{}|]|https?:|\bwww\.|\d{3,}|\b(?:press|news|reuters|agency|staff|times|post|correspondent|"
    r"writer|reporter|editor|contributor|updated|published)\b",
    re.I,
)


# "and" in the languages of news; lower case only, so names are never split
_AND = re.compile(r"\s*(?:,|;|&|\||\b(?:and|und|et|y|e|en|og|och)\b)\s*")
# a homepage after the name: "Bradley M. Kuhn (http://ebb.org/bkuhn/)"
_HOMEPAGE = re.compile(r"\s*\((?:https?://)?[^\s()]+/[^\s()]+\)")
# "Name (avec Other et Third)", "Name (with Other)": co-authors
_WITH = re.compile(r"\s*\((?:with|avec|mit|con|com|met)\s+([^()]+)\)", re.I)


def _co_authors(text: str) -> str:
    return _WITH.sub(r", \1", _HOMEPAGE.sub("", text))


def split_authors(raw: str | Iterable[str]) -> tuple[str, ...]:
    parts = [raw] if isinstance(raw, str) else list(raw)
    out: list[str] = []
    for part in parts:
        for name in _AND.split(_co_authors(collapse_ws(part))):
            name = _AUTHOR_JUNK.sub("", name).strip(" .:-–—")
            name = _AUTHOR_JUNK.sub("", name).strip(" .:-–—")
            if (
                not name
                or _NOT_A_NAME.search(name)
                or word_count(name) > 5
                # a sentence, not a name; scripts without case pass
                or not name[:1].isalpha()
                or name[:1].islower()
            ):
                continue
            if name.lower() not in {o.lower() for o in out}:
                out.append(name)
    return tuple(out[:10])


def people(
    names: Iterable[str], sites: Iterable[str], host: str, persons: Iterable[str] = ()
) -> tuple[str, ...]:
    """The names that are not the site's or its publisher's: a page's author field often
    holds "SPIEGEL ONLINE", "National Geographic" or "Deutsche Welle (www.dw.com)". A
    name JSON-LD types as a Person stays, though a one-person site may bear it."""
    sites, keep = list(sites), {fold(p) for p in persons}
    return tuple(
        n for n in names if fold(n) in keep or not is_site_name(n, sites, host, bare_label=False)
    )


def first_people(
    sources: Iterable[Callable[[], tuple[str, ...]]],
    sites: Iterable[str],
    host: str,
    persons: Iterable[str] = (),
) -> tuple[str, ...]:
    """The people named by the first source that names any (later sources cost more)."""
    sites, persons = list(sites), list(persons)
    for source in sources:
        found = people(source(), sites, host, persons)
        if found:
            return found
    return ()
