"""Evidence that a paragraph the main-content extractor kept is page furniture.

The extractor runs in its default (recall) mode, so a paragraph it is unsure about is
kept. It is dropped afterwards only on evidence found in the page itself:

- it sits inside furniture markup: nav/aside/footer/form elements, ARIA roles of
  navigation or page chrome, or class/id names of share bars, related-story boxes,
  newsletter and cookie boxes, comments and ads;
- it is mostly link text (a teaser or a list of links), and short.

Markup evidence is weighed against the article: a furniture-named element holding most of
the kept paragraphs is the article's own container ("post has-share-bar"), not furniture.
"""

from __future__ import annotations

import re
from collections import Counter
from urllib.parse import urlsplit

import lxml.etree as etree

from worker.articles.text import text_of, word_count

_FURNITURE_TAGS = frozenset({"nav", "aside", "footer", "form", "menu"})
_FURNITURE_ROLES = frozenset({"navigation", "complementary", "contentinfo", "banner", "menu"})
# Whole tokens of class/id names (split on space, "-" and "_"), so "shared-story" or
# "adventure" do not count.
_FURNITURE_NAME = re.compile(
    r"(?:^|[\s_-])(?:nav|navbar|menu|footer|sidebar|related|recirc|comments?|"
    r"disqus|cookies?|consent|gdpr|newsletter|signup|subscribe|subscription|promo|"
    r"advert|advertisement|ads?|sponsored|outbrain|taboola|share|sharing|social|"
    r"trending|popular|most-read|breadcrumbs?|tags?|latest|recommended|read-next|up-next|"
    r"more-stories|print|tools|toolbar|rail|hide|hidden)(?:$|[\s_-])",
    re.I,
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
# Blocks an extractor emits as paragraphs; their text is looked up in the page.
_BLOCK_TAGS = ("p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "dd", "dt", "td")
_HIDDEN_METADATA = (
    "//*[@itemscope or @itemprop][contains(translate(@style, ' ', ''), 'display:none')]"
)
_SPACE = re.compile(r"\s+")
_LINK_SHARE = 0.6  # share of a block's words inside links above which it is a link list
_LINK_MAX_WORDS = 40  # longer blocks are prose even with many links


def _key(text: str) -> str:
    # Without spaces: extractors and itertext() space inline markup differently.
    return _SPACE.sub("", text).lower()


def block_index(root: etree._Element) -> dict[str, etree._Element]:
    """The page's text blocks by their text (the first one when a text repeats)."""
    index: dict[str, etree._Element] = {}
    for el in root.iter(_BLOCK_TAGS):
        key = _key(text_of(el))
        if key:
            index.setdefault(key, el)
    return index


def furniture_ancestor(el: etree._Element) -> etree._Element | None:
    """The nearest ancestor (or el itself) whose tag, role or names mark it as furniture."""
    node: etree._Element | None = el
    while node is not None and node.tag not in ("body", "html"):
        if isinstance(node.tag, str) and _is_furniture_markup(node):
            return node
        node = node.getparent()
    return None


def _is_furniture_markup(el: etree._Element) -> bool:
    if el.tag in _FURNITURE_TAGS:
        return True
    if (el.get("role") or "").lower() in _FURNITURE_ROLES:
        return True
    if el.get("hidden") is not None or _HIDDEN_STYLE.search(el.get("style") or ""):
        return True  # not shown to the reader
    if el.tag == "article":
        return False
    return bool(_FURNITURE_NAME.search(f"{el.get('class') or ''} {el.get('id') or ''}"))


def _not_title(paragraphs: list[str], title: str) -> list[str]:
    # Repeats of other lines stay: interviews and recipes repeat their questions and steps.
    key = _key(title)
    return [p for p in paragraphs if not key or _key(p) != key]


def drop_hidden_metadata(root: etree._Element) -> None:
    """Remove hidden schema.org blocks: metadata for machines (a headline, dates, an image
    URL as text) that extractors in recall mode read as paragraphs."""
    found = root.xpath(_HIDDEN_METADATA)
    for el in found if isinstance(found, list) else ():
        if not isinstance(el, etree._Element):
            continue
        parent = el.getparent()
        if parent is not None:
            parent.remove(el)


def _host(url: str) -> str:
    host = urlsplit(url).hostname or "" if "//" in url else ""
    return host.removeprefix("www.")


def link_heavy(el: etree._Element, host: str) -> bool:
    """Short, mostly link text, and the links lead to other pages of the same site: a
    teaser of another story. Links out (a product, a source, a reference) are text."""
    words = word_count(text_of(el))
    if not words or words > _LINK_MAX_WORDS:
        return False
    links = [a for a in el.iter("a") if _internal(a.get("href") or "", host)]
    return sum(word_count(text_of(a)) for a in links) / words >= _LINK_SHARE


def _internal(href: str, host: str) -> bool:
    href = href.strip()
    if not href or href.startswith(("#", "javascript:", "mailto:")):
        return False
    if "//" not in href:
        return True  # relative: the same site
    return bool(host) and _host(href) == host


def drop_furniture(
    root: etree._Element, paragraphs: list[str], url: str = "", title: str = ""
) -> list[str]:
    """The paragraphs without those that the page marks as furniture, and without copies
    of the title (a widget or a metadata block restating it)."""
    paragraphs = _not_title(paragraphs, title)
    index = block_index(root)
    host = _host(url)
    found = {i: index.get(_key(p)) for i, p in enumerate(paragraphs)}
    marked = {i: furniture_ancestor(el) for i, el in found.items() if el is not None}
    # A furniture-named element holding half the matched paragraphs is the article itself.
    holds = Counter(id(a) for a in marked.values() if a is not None)
    matched = sum(1 for el in found.values() if el is not None) or 1
    out = []
    for i, p in enumerate(paragraphs):
        el, anc = found[i], marked.get(i)
        if anc is not None and holds[id(anc)] * 2 < matched:
            continue
        if el is not None and (el.tag == "h1" or link_heavy(el, host)):
            continue  # the page's headline, told apart from its <title>; or a teaser
        out.append(p)
    return out
