"""What a page says of its article in markup: JSON-LD, then OpenGraph / article / Dublin
Core meta tags (in that order of trust); and the title and language."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
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
    publisher: str = ""
    persons: tuple[str, ...] = ()  # authors JSON-LD types as Person: never a site's name
    # every title the markup gives, most trusted first: the title is chosen among them
    titles: tuple[str, ...] = ()

    def fill(self, other: Meta) -> None:
        """Take other's values for the fields still empty here (self is more trusted)."""
        for name in self.__dataclass_fields__:
            if not getattr(self, name) and getattr(other, name):
                setattr(self, name, getattr(other, name))


_ARTICLE_TYPES = re.compile(
    r"(article|posting|report|blog|webpage|review|analysis|opinion|liveblog)", re.I
)


_CDATA = re.compile(r"^\s*(?://\s*)?<!\[CDATA\[|(?://\s*)?\]\]>\s*$")


def _jsonld_objects(tree: lxml.html.HtmlElement) -> Iterator[dict]:
    for script in tree.iterfind(".//script[@type]"):
        if "ld+json" not in (script.get("type") or "").lower():
            continue
        # XHTML pages wrap the JSON in a CDATA section, often behind "//"
        raw = _CDATA.sub("", (script.text or "")).strip()
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


def _ld_persons(value: object) -> list[str]:
    items = value[:10] if isinstance(value, list) else [value]
    return [
        n for v in items if isinstance(v, dict) and "Person" in _ld_types(v) for n in _ld_names(v)
    ]


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
        meta.publisher = meta.publisher or _first_str(_ld_names(obj.get("publisher")))
        if not _ARTICLE_TYPES.search(types) or (types.strip() == "WebPage" and meta.title):
            continue
        found = Meta(
            title=_first_str(obj.get("headline")) or _first_str(obj.get("name")),
            authors=tuple(_ld_names(obj.get("author"))),
            persons=tuple(_ld_persons(obj.get("author"))),
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
    # RDFa property= is the standard's attribute, name= the loose one: its values first
    metas = sorted(tree.iterfind(".//meta"), key=lambda el: el.get("property") is None)
    for el in metas:
        keys = (el.get("property") or el.get("name") or el.get("itemprop") or "").lower()
        keys = keys or (el.get("http-equiv") or "").lower()
        value = collapse_ws(el.get("content"))
        # a property may name several vocabularies at once: "dc:title og:title"
        for key in keys.split() if value else ():
            key = _DC_PREFIX.sub(lambda m: "dcterms." if "term" in m[0] else "dc.", key)
            tags.setdefault(key, []).append(value)
    return tags


_DC_PREFIX = re.compile(r"^(?:dc|dcterms?)[:.]")


def _pick(tags: dict[str, list[str]], *keys: str) -> str:
    for key in keys:
        if tags.get(key):
            return tags[key][0]
    return ""


# meta names that carry each field, most trusted first
_AUTHOR_KEYS = (
    "dc.creator",
    "dcterms.creator",
    "author",
    "article:author",
    "byl",
    "parsely-author",
    "sailthru.author",
)
# Dublin Core is written for the document itself; og/twitter titles are for sharing
_TITLE_KEYS = ("dc.title", "dcterms.title", "og:title", "twitter:title", "parsely-title")
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


_URL_STARTS = ("http://", "https://", "/")


def meta_og(tree: lxml.html.HtmlElement) -> Meta:
    tags = _meta_tags(tree)
    # the first name that carries authors: names under other keys repeat or contradict it
    authors = next(
        (
            found
            for key in _AUTHOR_KEYS
            if (found := [a for a in tags.get(key, []) if not a.startswith(_URL_STARTS)])
        ),
        [],
    )
    titles = tuple(dict.fromkeys(t for key in _TITLE_KEYS for t in tags.get(key, [])))
    return Meta(
        title=titles[0] if titles else "",
        titles=titles,
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


def strip_site(title: str, site_name: str | Iterable[str], host: str) -> str:
    title = collapse_ws(title)
    parts = _TITLE_SEPARATORS.split(title)
    if len(parts) < 2:
        return title
    names = [site_name] if isinstance(site_name, str) else list(site_name)
    kept = [p for p in parts if not is_site_name(p, names, host)]
    if kept and len(kept) < len(parts):
        return " - ".join(kept) if len(kept) > 1 else kept[0]
    # No site name known: drop a short last segment after a pipe-like separator.
    last = parts[-1]
    if word_count(last) <= 4 and word_count(last) < word_count(" ".join(parts[:-1])):
        return title[: title.rfind(last)].rstrip(" |-–—:«»·•")
    return title


def _compact(text: str) -> str:
    return re.sub(r"\W+", "", text.lower().removeprefix("www."))


_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or"})


def domain_label(host: str) -> str:
    """ "spiegel" of www.spiegel.de, "bbc" of news.bbc.co.uk: the name a site goes by."""
    labels = [x for x in host.lower().split(".") if x and x != "www"]
    if len(labels) > 1:
        labels.pop()  # the TLD
    if len(labels) > 1 and labels[-1] in _SECOND_LEVEL:
        labels.pop()
    return labels[-1] if labels else ""


# what a publisher adds to its domain's name when it signs as an author: "SPIEGEL ONLINE"
_HOUSE_SUFFIXES = ("", "online", "news", "magazine", "digital", "staff", "desk", "team")


def is_site_name(text: str, names: Iterable[str], host: str, bare_label: bool = True) -> bool:
    """Whether text names the site: its og:site_name or publisher, its host, or its
    domain's label spelled out ("The Verge" on theverge.com, "SPIEGEL ONLINE" on
    spiegel.de). bare_label=False for authors: "Haki Benita" may own hakibenita.com."""
    c = _compact(text)
    if not c:
        return False
    label = domain_label(host)
    known = {_compact(n) for n in names if n} | {_compact(host)}
    if c in known:
        return True
    if len(label) < 3:
        return False
    house = {"the" + label} | {label + s for s in _HOUSE_SUFFIXES if s or bare_label}
    return c in house


_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "«": '"', "»": '"'})


def fold(text: str) -> str:
    """Case, quotes and every kind of space folded away, for comparing names and titles."""
    return re.sub(r"\s+", " ", text.translate(_QUOTES)).strip().lower()


def _agree(a: str, b: str) -> bool:
    """The same title, or one a longer form of the other (a site suffix, a kicker)."""
    fa, fb = fold(a), fold(b)
    short = fa if len(fa) <= len(fb) else fb
    return bool(short) and (fa == fb or (word_count(short) >= 2 and (fa in fb or fb in fa)))


def page_title(
    tree: lxml.html.HtmlElement,
    ld_title: str,
    meta_titles: Iterable[str],
    sites: Iterable[str],
    host: str,
) -> str:
    """The headline among the markup's titles (JSON-LD first, then meta tags), <title> and
    the <h1>s: the one most of the other kinds agree with, ties to the more trusted.
    A JSON-LD headline can be the description and an og:title a teaser; a lone <h1> can
    be the site's logo: only agreement tells them apart."""
    sites = [s for s in sites if s]
    site_set = {fold(s) for s in sites} | {fold(host), fold(host).removeprefix("www.")}
    site_name = sites[0] if sites else ""
    h1s = [re.sub(r"\s+", " ", text_of(h)) for h in tree.iter("h1")]
    h1s = [h for h in h1s if 2 <= word_count(h) <= 40][:3]
    title_el = tree.find(".//title")
    raw_title = text_of(title_el) if title_el is not None else ""
    cands = [("ld", ld_title)] + [("meta", t) for t in meta_titles]
    cands += [("title", raw_title)] + [("h1", h) for h in h1s]
    cands = [(k, collapse_ws(t)) for k, t in cands if t and fold(t) not in site_set]
    if not cands:
        return ""
    forms = [strip_site(t, site_name, host) for _, t in cands]

    def support(i: int) -> int:
        return len(
            {
                cands[j][0]
                for j in range(len(cands))
                if cands[j][0] != cands[i][0]
                and (_agree(forms[i], forms[j]) or _agree(cands[i][1], cands[j][1]))
            }
        )

    best = max(range(len(cands)), key=lambda i: (support(i), -i))
    # Another source's headline that appears whole in the winner is its cleanest form
    # ("Blog name: Headline" -> "Headline"); the longest, for an <h1> may be the blog name.
    won = fold(forms[best])
    inside = [t for t in (*forms, *h1s) if fold(t) != won and fold(t) in won and _agree(t, won)]
    return max(inside, key=len) if inside else forms[best]


def page_language(tree: lxml.html.HtmlElement, meta: Meta) -> str | None:
    lang = tree.get("lang") or tree.get("{http://www.w3.org/XML/1998/namespace}lang") or ""
    lang = lang or (meta.language or "")
    m = re.match(r"^\s*([A-Za-z]{2,3})(?:[-_]|$)", lang)
    return m.group(1).lower() if m else None
