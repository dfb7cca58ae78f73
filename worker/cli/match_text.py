"""`newswatch match` for a reader: the JSON result (worker/cli/views.py, preview.py) as
text. The same facts, none added: the links `follow:` picked, each article, the
watchlists it would alert, those it matches but would not alert (a copy of a story an
earlier item alerts), and, asked, why each watchlist did or did not match."""

from __future__ import annotations

from typing import Any

SNIPPET = 200  # characters of an article's snippet or opening shown


def to_text(result: dict[str, Any]) -> str:
    lines: list[str] = []
    source = result.get("source")
    if source:
        lines += _source_lines(source, result)
    articles = result["articles"]
    if not source:
        lines.append(f"{len(articles)} article(s), config {result['config_version']}")
    for number, item in enumerate(articles, 1):
        lines += ["", *_item_lines(number, item)]
    if source:
        lines += ["", "Nothing was stored or sent.", f"Not {result['not_known']}."]
    return "\n".join(lines)


def _source_lines(source: dict[str, Any], result: dict[str, Any]) -> list[str]:
    full = "full text fetched" if source["full_text"] else "feed text only"
    lines = [
        f"source {source['name']} ({source['kind']}, {full}): {source['url']}",
        f"config {result['config_version']}",
    ]
    if source["fetched"] != source["url"]:
        lines.append(f"fetched from {source['fetched']}")
    if "links" in source:
        links = source["links"]
        pattern = f"follow: {source['follow']!r}" if source["follow"] else "no follow: pattern"
        lines.append(f"{pattern} picks {len(links)} link(s):")
        lines += [f"  {link}" for link in links]
    shown = len(result["articles"])
    lines.append(f"{result['items_found']} item(s) found, {shown} shown")
    return lines


def _item_lines(number: int, item: dict[str, Any]) -> list[str]:
    article = item.get("article") or {}
    title = article.get("title") or item.get("title") or "(no title)"
    url = article.get("url") or item.get("url") or ""
    lines = [f"{number}. {title}", f"   {url}"]
    if "refused" in item:
        return [*lines, f"   refused: {item['refused']}"]
    if "error" in item:
        return [*lines, f"   failed: {item['error']} (the service would try it again)"]
    lines += _match_lines(item)
    for e in item.get("explain", []):
        verdict = "matches" if e["matched"] else "does not match"
        lines.append(f"   why {e['watchlist']} {verdict}:")
        lines += [f"     - {reason}" for reason in e["reasons"]]
    return lines


def _match_lines(item: dict[str, Any]) -> list[str]:
    matches = item["matches"]
    if not matches:
        return ["   no watchlist matches"]
    duplicate_of: dict[str, str] = item.get("duplicate_of", {})
    lines = []
    for wm in matches:
        name = wm["watchlist"]
        if name in duplicate_of:
            head = f"   {name}: matches, would NOT alert (same story as {duplicate_of[name]})"
        else:
            head = f"   {name}: would alert"
        names = ", ".join(wm.get("names") or ())
        lines.append(f"{head}{f' [{names}]' if names else ''}")
        lines.append(f"     {_short(wm.get('snippet', ''))}")
    return lines


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"
