"""What a response must look like for what the caller expects (a feed, a page, anything).

The Content-Type decides, leniently where real feeds are sloppy: a type that
servers put on feeds and pages by mistake (or no type at all) gets the body
looked at before it is refused.
"""

from __future__ import annotations

from typing import Literal

Expect = Literal["feed", "html", "any"]
Verdict = Literal["ok", "sniff", "refuse"]

ACCEPT = {
    "feed": (
        "application/rss+xml, application/atom+xml, application/feed+json, "
        "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
    ),
    "html": "text/html, application/xhtml+xml;q=0.9, */*;q=0.5",
    "any": "*/*",
}

_FEED_TYPES = frozenset(
    {
        "application/xml",
        "text/xml",
        "application/json",
        "text/json",
        "application/x-rss+xml",
        "application/x-atom+xml",
        "application/rdf+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/feed+json",
    }
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Types whose body we look at before refusing: servers label feeds and pages
# with these when misconfigured (or label nothing at all).
_SNIFF_TYPES = frozenset(
    {"", "text/plain", "application/octet-stream", "binary/octet-stream", "application/x-download"}
)


def media_type(content_type: str | None) -> str:
    """'Text/HTML; charset=utf-8' -> 'text/html'; malformed or missing -> ''."""
    if not content_type:
        return ""
    mtype = content_type.split(";", 1)[0].strip().lower()
    return mtype if mtype.count("/") == 1 and " " not in mtype else ""


def type_verdict(expect: Expect, mtype: str) -> Verdict:
    if expect == "any":
        return "ok"
    if expect == "feed":
        if mtype in _FEED_TYPES or mtype.endswith(("+xml", "+json")):
            return "ok"
        if mtype in _SNIFF_TYPES or mtype in _HTML_TYPES:
            return "sniff"  # RSS served as text/html is common enough
        return "refuse"
    if mtype in _HTML_TYPES:
        return "ok"
    if mtype in _SNIFF_TYPES or mtype in ("text/xml", "application/xml"):
        return "sniff"
    return "refuse"


def _sniff(body: bytes) -> Literal["xml", "html", "json", "other"]:
    head = body[:1024].lstrip(b"\xef\xbb\xbf\xfe\xff\x00 \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html")) or (
        head.startswith(b"<") and b"<html" in head and b"<rss" not in head
    ):
        return "html"
    if head.startswith(b"<"):
        return "xml"
    if head.startswith((b"{", b"[")):
        return "json"
    return "other"


def sniff_ok(expect: Expect, body: bytes) -> bool:
    kind = _sniff(body)
    if expect == "feed":
        return kind in ("xml", "json")
    return kind in ("html", "xml")
