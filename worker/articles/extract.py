"""HTML page -> PageContent: the article a reader would agree with, and what the page says of it.

Body: trafilatura (precision-minded) finds the main content; readability-lxml is
consulted when trafilatura finds little; then site-independent cleanup removes
furniture lines (print/share buttons, "Tagged under", "Published in …", "Last
modified on …", related-story teasers, newsletter and cookie boxes).

Metadata, in order of trust: JSON-LD, then OpenGraph / article / Dublin Core
meta tags, then <time datetime>, then dates written in the page near the byline,
then the URL. A date written next to the byline beats a bare date line
elsewhere in the header (often the site's "today" line); a date introduced by
"Last modified"/"Updated" is the modification date, never the publication date.
Naive datetimes are taken as UTC.

Hostile input: input beyond MAX_HTML_BYTES is cut before parsing; lxml caps tree
depth at 256; binary and text-free pages raise ExtractionError. Nothing else
escapes: any other failure inside the parsers becomes ExtractionError too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import lxml.etree as etree
import lxml.html
import trafilatura
from dateutil import parser as dateparser

from worker.core.encoding import decode_html
from worker.core.model import PageContent
from worker.core.urls import canonical_url

# Real article pages are < 2 MB; 5 MB keeps every one of them whole while
# bounding parse time and memory (lxml needs ~10x the input size).
MAX_HTML_BYTES = 5_000_000
# Below this many words trafilatura probably missed the article: ask readability.
_SHORT_BODY_WORDS = 120


class ExtractionError(ValueError):
    """The page has no article: empty, binary, unparsable or without text."""


# ---------------------------------------------------------------- input


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


# ---------------------------------------------------------------- text helpers

_WS = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")


def _clean(text: str | None) -> str:
    return _WS.sub(" ", text or "").strip()


def _text_of(el: etree._Element) -> str:
    return _clean(" ".join(el.itertext()))


def _words(text: str) -> int:
    return len(text.split())


# ---------------------------------------------------------------- dates

# Month names of the other languages of Latin-script news (German, French, Spanish,
# Italian, Portuguese, Dutch), full and abbreviated, with and without accents:
# written dates in them are read by putting the English name in their place.
_FOREIGN_MONTHS = {
    month: names.split()
    for month, names in {
        "Jan": "januar jänner janvier enero gennaio janeiro januari janv jän ene gen",
        "Feb": "februar février fevrier febrero febbraio fevereiro februari févr fevr fev",
        "Mar": "märz maerz mars marzo março marco maart mär mrt",
        "Apr": "april avril abril aprile avr abr",
        "May": "mai mayo maggio maio mei mag",
        "Jun": "juni juin junio giugno junho giu",
        "Jul": "juli juillet julio luglio julho juil lug",
        "Aug": "august août aout agosto augustus ago",
        "Sep": "september septembre septiembre settembre setembro set sept",
        "Oct": "oktober octobre octubre ottobre outubro okt ott out",
        "Nov": "november novembre noviembre novembro",
        "Dec": "dezember décembre decembre diciembre dicembre dezembro december dez déc dic",
    }.items()
}
_FOREIGN_MONTH_OF = {name: month for month, names in _FOREIGN_MONTHS.items() for name in names}
_FOREIGN_MONTH = re.compile(
    r"\b(" + "|".join(sorted(_FOREIGN_MONTH_OF, key=len, reverse=True)) + r")\b\.?", re.I
)
_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?|"
    + "|".join(sorted(_FOREIGN_MONTH_OF, key=len, reverse=True))
    + r")\.?"
)
_WEEKDAY = r"(?:(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?\.?,?\s+)?"
_TIME = (
    r"(?:,?\s+(?:at\s+)?\d{1,2}[:.]\d{2}(?::\d{2})?(?:\s*[ap]\.?m\.?)?"
    r"(?:\s*(?:UTC|GMT|[A-Z]{2,4}T))?)?"
)
_TEXT_DATE = re.compile(
    rf"\b{_WEEKDAY}(?:"
    # 30 November 2017, 2. Dezember 2017, 1er décembre 2017, 30 de noviembre de 2017
    rf"\d{{1,2}}(?:st|nd|rd|th|er|º)?\.?\s+(?:of\s+|de\s+)?{_MONTHS},?\s+(?:de\s+)?\d{{4}}"
    rf"|{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"  # Dec 02, 2017
    rf"|\d{{4}}-\d{{2}}-\d{{2}}(?:[T ]\d{{2}}:\d{{2}}(?::\d{{2}})?)?"  # 2017-12-02 12:42
    rf"|\d{{1,2}}/\d{{1,2}}/\d{{4}}"  # 02/12/2017 (day first unless impossible)
    rf"){_TIME}",
    re.I,
)
_MODIFIED_CUE = re.compile(
    r"(modified|updated|edited|revised|aktualisiert|mis à jour|actualizado|atualizado|"
    r"aggiornato|bijgewerkt)\W*(?:on|at|am|le|el|em|il|op)?\W*$",
    re.I,
)
_PUBLISHED_CUE = re.compile(
    r"(published|posted|first published|date|veröffentlicht|publié|publicado|pubblicato|"
    r"gepubliceerd)\W*(?:on|at|am|le|el|em|il|op)?\W*$",
    re.I,
)
_URL_DATE = re.compile(r"/((?:19|20)\d{2})[/-](0?[1-9]|1[0-2])[/-](0?[1-9]|[12]\d|3[01])(?:/|-|$)")


# Zone abbreviations dateutil does not know; ambiguous ones resolved the US way.
_TZINFOS = {
    name: int(offset * 3600)
    for name, offset in {
        "EST": -5,
        "EDT": -4,
        "CST": -6,
        "CDT": -5,
        "MST": -7,
        "MDT": -6,
        "PST": -8,
        "PDT": -7,
        "AKST": -9,
        "AKDT": -8,
        "HST": -10,
        "BST": 1,
        "CET": 1,
        "CEST": 2,
        "EET": 2,
        "EEST": 3,
        "IST": 5.5,
        "JST": 9,
        "KST": 9,
        "AEST": 10,
        "AEDT": 11,
    }.items()
}


def parse_date(value: str | None, day_first: bool = True) -> datetime | None:
    """A timezone-aware UTC datetime from a machine or human date string, else None."""
    value = _clean(value)
    if not value or len(value) > 80:
        return None
    value = re.sub(r"\b(at|on)\b", " ", value, flags=re.I)
    if not value.isascii() or _FOREIGN_MONTH.search(value):
        # "1er décembre 2017", "30 de noviembre de 2017" -> "1 Dec 2017", "30 Nov 2017"
        value = _FOREIGN_MONTH.sub(lambda m: _FOREIGN_MONTH_OF[m[1].lower()], value)
        value = re.sub(r"(\d)(?:er|º)\b", r"\1", value)
        value = re.sub(r"\bde\b", " ", value, flags=re.I)
    value = re.sub(r"(\d)\.(\d{2})\b(?!\.)", r"\1:\2", value)  # 12.42 -> 12:42
    value = re.sub(r"\b([ap])\.m\.", r"\1m", value, flags=re.I)
    try:
        if re.match(r"^\d{4}-\d{2}-\d{2}", value):
            dt = dateparser.isoparse(value.replace(" ", "T", 1)) if "T" not in value else None
            if dt is None:
                dt = dateparser.isoparse(value)
        else:
            dt = dateparser.parse(value, dayfirst=day_first, fuzzy=True, tzinfos=_TZINFOS)
    except (ValueError, OverflowError, TypeError):
        try:
            dt = dateparser.parse(value, dayfirst=day_first, fuzzy=True, tzinfos=_TZINFOS)
        except (ValueError, OverflowError, TypeError):
            return None
    if not 1990 <= dt.year <= 2100:
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _date_in_url(url: str) -> datetime | None:
    m = _URL_DATE.search(url or "")
    if not m:
        return None
    try:
        return datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
    except ValueError:
        return None


# ---------------------------------------------------------------- metadata sources


@dataclass
class _Meta:
    title: str = ""
    authors: tuple[str, ...] = ()
    published: datetime | None = None
    modified: datetime | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()
    section: str | None = None
    canonical: str | None = None
    image: str | None = None
    lead: str = ""
    site_name: str = ""

    def fill(self, other: _Meta) -> None:
        """Take other's values for the fields still empty here (self is more trusted)."""
        for name in self.__dataclass_fields__:
            if not getattr(self, name) and getattr(other, name):
                setattr(self, name, getattr(other, name))


_ARTICLE_TYPES = re.compile(
    r"(article|posting|report|blog|webpage|review|analysis|opinion|liveblog)", re.I
)


def _jsonld_objects(tree: lxml.html.HtmlElement) -> Iterator[dict]:
    for script in tree.iterfind(".//script[@type]"):
        if "ld+json" not in (script.get("type") or "").lower():
            continue
        raw = (script.text or "").strip()
        if not raw or len(raw) > 500_000:
            continue
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        yield from _flatten_ld(data, 0)


def _flatten_ld(data: object, depth: int) -> Iterator[dict]:
    if depth > 4:
        return
    if isinstance(data, list):
        for item in data:
            yield from _flatten_ld(item, depth + 1)
    elif isinstance(data, dict):
        yield data
        for key in ("@graph", "mainEntity", "mainEntityOfPage"):
            if isinstance(data.get(key), list | dict):
                yield from _flatten_ld(data[key], depth + 1)


def _ld_types(obj: dict) -> str:
    t = obj.get("@type", "")
    return " ".join(t) if isinstance(t, list) else str(t)


def _ld_names(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        name = value.get("name")
        return [name] if isinstance(name, str) else []
    if isinstance(value, list):
        return [n for v in value[:10] for n in _ld_names(v)]
    return []


def _ld_url(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _ld_url(value.get("url") or value.get("contentUrl"))
    if isinstance(value, list) and value:
        return _ld_url(value[0])
    return None


def _ld_keywords(value: object) -> list[str]:
    if isinstance(value, str):
        return [k for k in re.split(r"[,;]", value) if k.strip()]
    if isinstance(value, list):
        return [k for v in value[:50] if isinstance(v, str) for k in _ld_keywords(v)]
    return []


def _first_str(value: object) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    return value if isinstance(value, str) else ""


def _meta_jsonld(tree: lxml.html.HtmlElement) -> _Meta:
    meta = _Meta()
    for obj in _jsonld_objects(tree):
        types = _ld_types(obj)
        if "WebSite" in types or "Organization" in types:
            meta.site_name = meta.site_name or _first_str(obj.get("name"))
        if not _ARTICLE_TYPES.search(types) or (types.strip() == "WebPage" and meta.title):
            continue
        found = _Meta(
            title=_first_str(obj.get("headline")) or _first_str(obj.get("name")),
            authors=tuple(_ld_names(obj.get("author"))),
            published=parse_date(_first_str(obj.get("datePublished") or obj.get("dateCreated"))),
            modified=parse_date(_first_str(obj.get("dateModified"))),
            language=_first_str(obj.get("inLanguage")) or None,
            tags=tuple(_ld_keywords(obj.get("keywords"))),
            section=_first_str(obj.get("articleSection")) or None,
            image=_ld_url(obj.get("image")),
            lead=_first_str(obj.get("description")),
            canonical=_first_str(obj.get("url")) or None,
        )
        if "WebPage" in types and "Article" not in types:
            found.authors = ()  # a WebPage's author is usually the site
        meta.fill(found)
    return meta


def _meta_tags(tree: lxml.html.HtmlElement) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {}
    for el in tree.iterfind(".//meta"):
        key = (el.get("property") or el.get("name") or el.get("itemprop") or "").strip().lower()
        if not key:
            key = (el.get("http-equiv") or "").strip().lower()
        value = _clean(el.get("content"))
        if key and value:
            tags.setdefault(key, []).append(value)
    return tags


def _pick(tags: dict[str, list[str]], *keys: str) -> str:
    for key in keys:
        if tags.get(key):
            return tags[key][0]
    return ""


def _meta_og(tree: lxml.html.HtmlElement) -> _Meta:
    tags = _meta_tags(tree)
    authors = [
        a
        for key in ("author", "article:author", "dc.creator", "parsely-author", "sailthru.author")
        for a in tags.get(key, [])
        if not a.startswith(("http://", "https://", "/"))
    ]
    canonical = None
    for link in tree.iterfind(".//link[@rel]"):
        if "canonical" in (link.get("rel") or "").lower().split() and link.get("href"):
            canonical = link.get("href").strip()
            break
    return _Meta(
        title=_pick(tags, "og:title", "twitter:title", "dc.title", "parsely-title"),
        authors=tuple(authors[:10]),
        published=parse_date(
            _pick(
                tags,
                "article:published_time",
                "og:article:published_time",
                "datepublished",
                "publishdate",
                "pubdate",
                "dc.date.issued",
                "dcterms.date",
                "dc.date",
                "date",
                "parsely-pub-date",
                "sailthru.date",
                "article.published",
                "publish-date",
                "citation_publication_date",
            )
        ),
        modified=parse_date(
            _pick(
                tags,
                "article:modified_time",
                "og:updated_time",
                "datemodified",
                "dcterms.modified",
                "last-modified",
                "article.updated",
            )
        ),
        language=_pick(tags, "og:locale", "content-language", "dc.language", "language") or None,
        tags=tuple(
            t
            for key in ("article:tag", "news_keywords", "parsely-tags")
            for v in tags.get(key, [])
            for t in (v.split(",") if key != "article:tag" else [v])
            if t.strip()
        ),
        section=_pick(tags, "article:section", "parsely-section", "section") or None,
        canonical=canonical or _pick(tags, "og:url") or None,
        image=_pick(tags, "og:image", "og:image:url", "og:image:secure_url", "twitter:image")
        or None,
        lead=_pick(tags, "og:description", "description", "twitter:description"),
        site_name=_pick(tags, "og:site_name", "application-name"),
    )


# ---------------------------------------------------------------- dates and bylines in the page

_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "nav", "footer", "aside"})
_FURNITURE_ATTR = re.compile(
    r"(^|[\s_-])(nav|menu|footer|sidebar|widget|related|comment|topbar|top-bar|masthead|"
    r"breadcrumb|cookie|newsletter|promo|advert|ad|ads|share|social|trending|popular)($|[\s_-])",
    re.I,
)
_BYLINE = re.compile(
    r"^\s*(?i:(?:written\s+|posted\s+|words\s+|story\s+|reporting\s+)?(?:by|von|par|por|door)[:\s]+)"
    r"((?:[A-Z][\w'’.\-]*\.?\s*){1,4}(?:(?:,|and|&)\s*(?:[A-Z][\w'’.\-]*\.?\s*){1,4}){0,4})",
    re.U,
)


def _is_furniture(el: etree._Element) -> bool:
    attrs = f"{el.get('class') or ''} {el.get('id') or ''} {el.get('role') or ''}"
    return bool(_FURNITURE_ATTR.search(attrs)) and el.tag not in {"body", "html", "article"}


def _header_texts(tree: lxml.html.HtmlElement, limit: int = 60) -> list[tuple[str, etree._Element]]:
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
        elif _is_furniture(el):
            return False
        if started and el.text and el.text.strip():
            out.append((_clean(el.text), el))
        for child in el:
            if walk(child, depth + 1):
                return True
            if started and child.tail and child.tail.strip():
                out.append((_clean(child.tail), el))
        return len(out) >= limit

    walk(body, 0)
    return out


def _dates_in_text(texts: list[tuple[str, etree._Element]]) -> tuple[datetime | None, ...]:
    """(byline-adjacent, first plain, modified) dates among header texts."""
    byline_at = next((i for i, (t, _) in enumerate(texts) if _BYLINE.match(t)), None)
    after, near, plain, modified = None, None, None, None
    for i, (text, el) in enumerate(texts):
        if _words(text) > 40:
            continue
        for m in _TEXT_DATE.finditer(text):
            dt = parse_date(m.group(0))
            if dt is None:
                continue
            before = text[: m.start()]
            prev = texts[i - 1][0] if i and not before.strip() else ""
            if _MODIFIED_CUE.search(before) or (prev and _MODIFIED_CUE.search(prev)):
                modified = modified or dt
                continue
            cue = _PUBLISHED_CUE.search(before) or (prev and _PUBLISHED_CUE.search(prev))
            attrs = f"{el.get('class') or ''} {el.get('itemprop') or ''}".lower()
            if byline_at is not None and 0 <= i - byline_at <= 2:
                after = after or dt  # the date written right after the byline
            elif (byline_at is not None and 0 < byline_at - i <= 2) or cue or "created" in attrs:
                near = near or dt
            plain = plain or dt
    return after or near, plain, modified


def _time_elements(tree: lxml.html.HtmlElement) -> tuple[datetime | None, datetime | None]:
    published = modified = None
    for el in tree.iter("time"):
        value = el.get("datetime") or el.get("content")
        if not value:
            continue
        dt = parse_date(value)
        if dt is None:
            continue
        label = f"{el.get('class') or ''} {el.get('itemprop') or ''} {_text_of(el)[:60]}".lower()
        parent = el.getparent()
        if parent is not None:
            label += f" {parent.get('class') or ''} {(parent.text or '')[:40]}".lower()
        if re.search(r"modif|updat|edited", label):
            modified = modified or dt
        else:
            published = published or dt
    return published, modified


def _byline_authors(texts: list[tuple[str, etree._Element]]) -> tuple[str, ...]:
    for text, _el in texts[:40]:
        m = _BYLINE.match(text)
        if m:
            names = _split_authors(m.group(1))
            if names:
                return names
    return ()


def _author_elements(tree: lxml.html.HtmlElement) -> tuple[str, ...]:
    for xpath in (
        './/*[@rel="author"]',
        './/*[@itemprop="author"]',
        './/*[contains(concat(" ", normalize-space(@class), " "), " author ")]',
        './/*[contains(@class, "byline")]',
    ):
        for el in tree.xpath(xpath)[:3]:
            names = _split_authors(_text_of(el))
            if names:
                return names
    return ()


_AUTHOR_JUNK = re.compile(
    r"^(by|written by|posted by|author|authors|and|staff|admin|editor|update[sd]?)\b[:\s]*", re.I
)
_NOT_A_NAME = re.compile(
    r"[@/<>{}|]|https?:|\d{3,}|\b(?:press|news|reuters|agency|staff|times|post|correspondent|"
    r"writer|reporter|editor|contributor|updated|published)\b",
    re.I,
)


def _split_authors(raw: str | Iterable[str]) -> tuple[str, ...]:
    parts = [raw] if isinstance(raw, str) else list(raw)
    out: list[str] = []
    for part in parts:
        for name in re.split(r"\s*(?:,|;|\band\b|&|\|)\s*", _clean(part)):
            name = _AUTHOR_JUNK.sub("", name).strip(" .:-–—")
            name = _AUTHOR_JUNK.sub("", name).strip(" .:-–—")
            if (
                not name
                or _NOT_A_NAME.search(name)
                or _words(name) > 5
                or not any(c.isupper() for c in name[:1])
            ):
                continue
            if name.lower() not in {o.lower() for o in out}:
                out.append(name)
    return tuple(out[:10])


# ---------------------------------------------------------------- title and language

_TITLE_SEPARATORS = re.compile(r"\s+(?:\||-|–|—|::|«|»|·|•)\s+")


def _strip_site(title: str, site_name: str, host: str) -> str:
    title = _clean(title)
    parts = _TITLE_SEPARATORS.split(title)
    if len(parts) < 2:
        return title
    site = {site_name.lower(), host.lower(), host.lower().removeprefix("www.")} - {""}
    kept = [
        p for p in parts if p.lower() not in site and p.lower().removeprefix("www.") not in site
    ]
    if kept and len(kept) < len(parts):
        return " - ".join(kept) if len(kept) > 1 else kept[0]
    # No site name known: drop a short last segment after a pipe-like separator.
    last = parts[-1]
    if _words(last) <= 4 and _words(last) < _words(" ".join(parts[:-1])):
        return title[: title.rfind(last)].rstrip(" |-–—:«»·•")
    return title


def _title(tree: lxml.html.HtmlElement, meta: _Meta, host: str) -> str:
    h1s = [_text_of(h) for h in tree.iter("h1")]
    h1s = [h for h in h1s if 2 <= _words(h) <= 40]
    raw_title = _text_of(tree.find(".//title")) if tree.find(".//title") is not None else ""
    candidate = meta.title or raw_title
    # A headline that appears whole in an <h1> is the cleanest form.
    for h in h1s:
        if candidate and (h.lower() in candidate.lower() or candidate.lower() in h.lower()):
            return (
                h
                if h.lower() in candidate.lower()
                else _strip_site(candidate, meta.site_name, host)
            )
    if candidate:
        return _strip_site(candidate, meta.site_name, host)
    return h1s[0] if h1s else ""


def _language(tree: lxml.html.HtmlElement, meta: _Meta) -> str | None:
    lang = tree.get("lang") or tree.get("{http://www.w3.org/XML/1998/namespace}lang") or ""
    lang = lang or (meta.language or "")
    m = re.match(r"^\s*([A-Za-z]{2,3})(?:[-_]|$)", lang)
    return m.group(1).lower() if m else None


# ---------------------------------------------------------------- body

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
    r"(?:image|photo|picture)(?: credit)?:.{0,80}|copyright ©.*|© .{0,80})\W*$",
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


def _paragraphs(body: etree._Element) -> list[str]:
    out: list[str] = []
    for el in body:
        if not isinstance(el.tag, str):
            continue
        if el.tag == "list":
            items = [_text_of(i) for i in el.iter("item")]
            out.extend(i for i in items if i)
        elif el.tag == "table":
            rows = [" ".join(_text_of(c) for c in r.iter("cell")) for r in el.iter("row")]
            out.extend(r.strip() for r in rows if r.strip())
        else:
            text = _text_of(el)
            if text:
                out.append(text)
    return out


def _clean_paragraphs(paragraphs: list[str]) -> list[str]:
    out: list[str] = []
    n = len(paragraphs)
    for i, p in enumerate(paragraphs):
        # Trailing furniture section: only trusted in the last third of the text.
        if _END_MARKER.match(p) and i >= n * 2 / 3 and out:
            break
        if _words(p) <= 14 and _FURNITURE_LINE.match(p):
            continue
        out.append(p)
    return out


def _key(text: str) -> str:
    return _clean(text).lower()[:80]


def _continuations(original: lxml.html.HtmlElement, paragraphs: list[str]) -> list[str]:
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
        if _key(_text_of(el)) == last:
            container = el.getparent()
            break
    if container is None or not container.get("class"):
        return paragraphs
    siblings = [
        c
        for c in original.iter(container.tag)
        if c.get("class") == container.get("class") and not _is_furniture(c)
    ]
    if len(siblings) < 2 or len(siblings) > 20:
        return paragraphs
    out = list(paragraphs)
    for c in siblings[siblings.index(container) + 1 :]:
        # Paragraphs only: lists in these blocks are mostly "more stories" links.
        texts = list(dict.fromkeys(_text_of(p) for p in c.iter("p", "h2", "h3")))
        texts = [t for t in texts if t and _key(t) not in seen]
        long = [t for t in texts if _words(t) >= 25]
        if not long or sum(_words(t) for t in long) < 0.6 * sum(_words(t) for t in texts):
            continue
        out.extend(texts)
        seen.update(_key(t) for t in texts)
    return out


def _drop_header_lines(paragraphs: list[str], title: str) -> list[str]:
    """Drop the title, byline and date lines an extractor kept above the first paragraph."""
    start = 0
    for p in paragraphs[:4]:
        short = _words(p) <= 12
        is_title = bool(title) and p.lower() == title.lower()
        is_date = short and bool(_TEXT_DATE.search(p)) and _words(_TEXT_DATE.sub("", p)) <= 5
        if not (is_title or (short and _BYLINE.match(p)) or is_date):
            break
        start += 1
    return paragraphs[start:]


def _readability_text(html: str) -> list[str]:
    try:
        from readability import Document  # imported lazily: only needed on short bodies

        summary = Document(html).summary(html_partial=True)
        tree = lxml.html.fragment_fromstring(summary, create_parent="div")
    except Exception:
        return []
    blocks = tree.xpath(".//p|.//h2|.//h3|.//h4|.//li|.//blockquote[not(.//p)]|.//pre")
    return [t for t in (_text_of(b) for b in blocks) if t]


def _trafilatura(tree: lxml.html.HtmlElement, url: str):
    try:
        return trafilatura.bare_extraction(
            tree,
            url=url,
            # Our own metadata reading replaces trafilatura's (and its costly htmldate pass).
            with_metadata=False,
            include_comments=False,
            include_tables=True,
            favor_precision=True,
            deduplicate=False,
        )
    except (RecursionError, ValueError, TypeError, AttributeError, etree.LxmlError):
        return None


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


def _extract(text: str, url: str) -> PageContent:
    tree = _parse(text)
    host = re.sub(r"^[a-z]+://([^/:]+).*$", r"\1", url or "", flags=re.I)
    meta = _meta_jsonld(tree)
    meta.fill(_meta_og(tree))
    header = _header_texts(tree)
    title = _title(tree, meta, host)
    tp, tm = _time_elements(tree)
    near, plain, text_modified = _dates_in_text(header)
    published = meta.published or tp or near or plain or _date_in_url(url)
    modified = meta.modified or tm or text_modified
    authors = _split_authors(meta.authors) or _byline_authors(header) or _author_elements(tree)
    language = _language(tree, meta)

    doc = _trafilatura(tree, url)
    paragraphs = _paragraphs(doc.body) if doc is not None and doc.body is not None else []
    paragraphs = _continuations(_parse(text), paragraphs)
    if sum(_words(p) for p in paragraphs) < _SHORT_BODY_WORDS:
        alt = _readability_text(text)
        if sum(_words(p) for p in alt) > 2 * sum(_words(p) for p in paragraphs):
            paragraphs = alt
    paragraphs = _clean_paragraphs(paragraphs)
    paragraphs = _drop_header_lines(paragraphs, title)
    body = "\n\n".join(paragraphs)
    if not body.strip():
        raise ExtractionError("no article text found")

    if doc is not None:
        meta.fill(
            _Meta(
                title=doc.title or "",
                authors=_split_authors(doc.author or ""),
                image=doc.image,
                lead=doc.description or "",
                tags=tuple(doc.tags or ()),
                section=(doc.categories or [None])[0],
            )
        )
        authors = authors or meta.authors
        title = title or _strip_site(meta.title, meta.site_name or doc.sitename or "", host)
    lead = _clean(meta.lead)
    if lead and _clean(body[: len(lead) + 20]).lower().startswith(lead.lower()[:80]):
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
