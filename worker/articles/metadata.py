"""What a page says of its article in markup: JSON-LD, then OpenGraph / article / Dublin
Core meta tags (in that order of trust); and the title and language."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import lxml.html

from worker.articles.dates import parse_date
from worker.articles.text import collapse_ws, text_of, word_count


@dataclass
class Meta:
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

    def fill(self, other: Meta) -> None:
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


def meta_jsonld(tree: lxml.html.HtmlElement) -> Meta:
    meta = Meta()
    for obj in _jsonld_objects(tree):
        types = _ld_types(obj)
        if "WebSite" in types or "Organization" in types:
            meta.site_name = meta.site_name or _first_str(obj.get("name"))
        if not _ARTICLE_TYPES.search(types) or (types.strip() == "WebPage" and meta.title):
            continue
        found = Meta(
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
        value = collapse_ws(el.get("content"))
        if key and value:
            tags.setdefault(key, []).append(value)
    return tags


def _pick(tags: dict[str, list[str]], *keys: str) -> str:
    for key in keys:
        if tags.get(key):
            return tags[key][0]
    return ""


# meta names that carry each field, most trusted first
_AUTHOR_KEYS = ("author", "article:author", "dc.creator", "parsely-author", "sailthru.author")
_PUBLISHED_KEYS = (
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
_MODIFIED_KEYS = (
    "article:modified_time",
    "og:updated_time",
    "datemodified",
    "dcterms.modified",
    "last-modified",
    "article.updated",
)
_TAG_KEYS = ("article:tag", "news_keywords", "parsely-tags")  # all but article:tag are lists
_IMAGE_KEYS = ("og:image", "og:image:url", "og:image:secure_url", "twitter:image")


def _canonical_link(tree: lxml.html.HtmlElement) -> str | None:
    for link in tree.iterfind(".//link[@rel]"):
        if "canonical" in (link.get("rel") or "").lower().split() and link.get("href"):
            return link.get("href").strip()
    return None


def meta_og(tree: lxml.html.HtmlElement) -> Meta:
    tags = _meta_tags(tree)
    authors = [
        a
        for key in _AUTHOR_KEYS
        for a in tags.get(key, [])
        if not a.startswith(("http://", "https://", "/"))
    ]
    return Meta(
        title=_pick(tags, "og:title", "twitter:title", "dc.title", "parsely-title"),
        authors=tuple(authors[:10]),
        published=parse_date(_pick(tags, *_PUBLISHED_KEYS)),
        modified=parse_date(_pick(tags, *_MODIFIED_KEYS)),
        language=_pick(tags, "og:locale", "content-language", "dc.language", "language") or None,
        tags=tuple(
            t
            for key in _TAG_KEYS
            for v in tags.get(key, [])
            for t in (v.split(",") if key != "article:tag" else [v])
            if t.strip()
        ),
        section=_pick(tags, "article:section", "parsely-section", "section") or None,
        canonical=_canonical_link(tree) or _pick(tags, "og:url") or None,
        image=_pick(tags, *_IMAGE_KEYS) or None,
        lead=_pick(tags, "og:description", "description", "twitter:description"),
        site_name=_pick(tags, "og:site_name", "application-name"),
    )


# ---------------------------------------------------------------- title and language

_TITLE_SEPARATORS = re.compile(r"\s+(?:\||-|–|—|::|«|»|·|•)\s+")


def strip_site(title: str, site_name: str, host: str) -> str:
    title = collapse_ws(title)
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
    if word_count(last) <= 4 and word_count(last) < word_count(" ".join(parts[:-1])):
        return title[: title.rfind(last)].rstrip(" |-–—:«»·•")
    return title


def page_title(tree: lxml.html.HtmlElement, meta: Meta, host: str) -> str:
    h1s = [text_of(h) for h in tree.iter("h1")]
    h1s = [h for h in h1s if 2 <= word_count(h) <= 40]
    raw_title = text_of(tree.find(".//title")) if tree.find(".//title") is not None else ""
    candidate = meta.title or raw_title
    # A headline that appears whole in an <h1> is the cleanest form.
    for h in h1s:
        if candidate and (h.lower() in candidate.lower() or candidate.lower() in h.lower()):
            return (
                h if h.lower() in candidate.lower() else strip_site(candidate, meta.site_name, host)
            )
    if candidate:
        return strip_site(candidate, meta.site_name, host)
    return h1s[0] if h1s else ""


def page_language(tree: lxml.html.HtmlElement, meta: Meta) -> str | None:
    lang = tree.get("lang") or tree.get("{http://www.w3.org/XML/1998/namespace}lang") or ""
    lang = lang or (meta.language or "")
    m = re.match(r"^\s*([A-Za-z]{2,3})(?:[-_]|$)", lang)
    return m.group(1).lower() if m else None
