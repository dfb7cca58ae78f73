"""`newswatch match --source NAME`: fetch one configured source now and show what the
service would do with it, storing and sending nothing.

The same functions as the service, in the same order: the source's fetch
(worker/sources/polling.py: `parse_feed` + `feed_items` for a feed, `page_links` with
its `follow:` pattern + `link_data` for a listing page), each item's article
(worker/articles/parsing.py: `item_article`, which fetches and extracts the page when
`full_text` says so), then the matcher. What needs the database is not known here and
is said so: whether an item is new, and whether its story already alerted a watchlist.
Within the items fetched now, a later copy of an earlier item's story does not alert a
watchlist the earlier one alerts (the story check of worker/articles/stories.py).
"""

from __future__ import annotations

from typing import Any

from worker.articles import stories
from worker.articles.parsing import ITEM_ERRORS, item_article, wants_full_text
from worker.bootstrap.config_in_force import ActiveConfig
from worker.cli.views import InputProblem, match_article, one_line
from worker.config.schema import SourceSpec
from worker.config.to_sources import fetch_options
from worker.core.encoding import decode_html
from worker.core.states import SourceKind
from worker.http.fetcher import Fetcher
from worker.sources.entries import feed_items, link_data
from worker.sources.feeds import FeedError, page_links, parse_feed

NOT_KNOWN = (
    "not known without the database: which items are new (the service skips those it "
    "stored before) and which are copies of a story that already alerted a watchlist "
    "(only the first copy alerts); among the items fetched now, a later copy of a story "
    "is shown as a duplicate; `newswatch rules test` replays stored articles"
)


def preview_source(
    active: ActiveConfig,
    name: str,
    *,
    explain: bool = False,
    watchlists: list[str] | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """What the service would do with source `name` now; raises InputProblem (one line)
    when the source is unknown or its fetch fails as a whole."""
    cfg = active.loaded.config
    spec = cfg.source(name)
    if spec is None:
        known = ", ".join(s.name for s in cfg.sources) or "none configured"
        raise InputProblem(f"no source named {name!r} (sources: {known})")
    kind = SourceKind.FEED if spec.feed else SourceKind.PAGE
    url = spec.feed or spec.page or ""
    fetcher = Fetcher(fetch_options(cfg.fetch), min_interval=cfg.fetch.min_interval)
    try:
        try:
            entries, final_url = _entries(fetcher, spec, kind, url)
        except (*ITEM_ERRORS, FeedError) as exc:
            raise InputProblem(f"source {name}: {url}: {one_line(exc)}") from None
        shown = entries if limit is None else entries[:limit]
        full_text = wants_full_text(kind, spec.full_text)
        items = [
            _item(active, fetcher, spec, data, full_text, explain, watchlists) for data in shown
        ]
    finally:
        fetcher.close()
    out: dict[str, Any] = {
        "config_version": active.version,
        "source": {
            "name": spec.name,
            "kind": kind,
            "url": url,
            "fetched": final_url,
            "full_text": full_text,
            "follow": spec.follow,
        },
        "items_found": len(entries),
        "articles": items,
        "not_known": NOT_KNOWN,
    }
    if kind == SourceKind.PAGE:
        out["source"]["links"] = [e["url"] for e in entries]  # what `follow:` picked
    return out


def configured_source(active: ActiveConfig, url: str) -> str | None:
    """The name of the configured source whose feed or page is `url`, if any."""
    for spec in active.loaded.config.sources:
        if url in (spec.feed, spec.page):
            return spec.name
    return None


def _entries(
    fetcher: Fetcher, spec: SourceSpec, kind: str, url: str
) -> tuple[list[dict[str, Any]], str]:
    """The source's items as the poll stage makes them, and the URL fetched."""
    result = fetcher.get(
        url,
        expect="feed" if kind == SourceKind.FEED else "html",
        respect_robots=spec.respect_robots,
    )
    content_type = result.headers.get("content-type")
    if kind == SourceKind.FEED:
        return feed_items(parse_feed(result.body, content_type, result.url)), result.url
    html = decode_html(result.body, content_type)
    return [link_data(u) for u in page_links(html, result.url, spec.follow)], result.url


def _item(
    active: ActiveConfig,
    fetcher: Fetcher,
    spec: SourceSpec,
    data: dict[str, Any],
    full_text: bool,
    explain: bool,
    watchlists: list[str] | None,
) -> dict[str, Any]:
    """One item: refused (as the poll stage stores it), failed (the service would retry
    or quarantine it), or its article and matches."""
    head = {"url": data.get("url"), "title": data.get("title")}
    if data.get("refused"):
        return {**head, "refused": data["refused"]}
    try:
        article = item_article(fetcher, data, spec.name, full_text, spec.respect_robots)
    except ITEM_ERRORS as exc:
        return {**head, "error": one_line(exc)}
    return {**head, **match_article(active, article, explain, watchlists)}


def mark_story_duplicates(items: list[dict[str, Any]]) -> None:
    """Give each matched item `alerts` (the watchlists it would alert) and `duplicate_of`
    (watchlist -> URL of the earlier item of the same story that alerts it instead), as
    the service's story claim would among these items. An article without body text
    starts its own story, as in the service (worker/articles/parsing.py)."""
    # earlier first copies: their text, URL and the watchlists their story alerts
    firsts: list[tuple[stories.StoryText, str, set[str]]] = []
    for item in items:
        if "article" not in item:
            continue
        article = item["article"]
        text = stories.StoryText(article["title"], article["body"])
        earlier = next((first for first in firsts if text.same_story(first[0])), None)
        would = [wm["watchlist"] for wm in item["matches"]]
        dup = {w: earlier[1] for w in would if earlier and w in earlier[2]}
        item["alerts"] = [w for w in would if w not in dup]
        item["duplicate_of"] = dup
        if earlier is None:
            firsts.append((text, article["url"], set(would)))
        else:
            earlier[2].update(would)  # the story's claims, whichever copy made them
