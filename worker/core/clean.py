"""Clean and bounded text before anything is stored. Pure.

Every text field that reaches the database passes through here first, so that
the same input gives the same row on SQLite and on PostgreSQL (which refuses NUL
in text and lone surrogates anywhere) and no field can grow without bound. The
limits are documented in docs/extraction.md ("Limits").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

# Field limits, in characters (not bytes). A cut text ends with ELLIPSIS.
MAX_TITLE = 1_000
MAX_AUTHOR = 200
MAX_AUTHORS = 20
MAX_TAG = 100
MAX_TAGS = 50
MAX_SUMMARY = 5_000  # feed summaries and article leads
MAX_BODY = 200_000
# Raw HTML content of a feed entry, kept for the parser: a cut fragment is still
# parsed (lxml closes what is open); its text is capped at MAX_BODY afterwards.
MAX_CONTENT_HTML = 1_000_000
# A URL is never cut (a cut URL is another URL): a longer one counts as absent.
# 2,000 is also the width of article.canonical_url.
MAX_URL = 2_000
MAX_LANGUAGE = 20  # article.language column

ELLIPSIS = "\u2026"

# Dates outside this window are not publication dates but garbage or sentinels
# (year 0, 9999-12-31, far negative epochs); they are dropped, never clamped,
# so nothing downstream (sorting, time-zone rendering) sees an extreme value.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

# C0 controls except \t and \n, DEL, C1 controls, and lone UTF-16 surrogates
# (Python strings can hold them, e.g. from JSON "\ud800"; no database can store them).
_UNWANTED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_NEWLINES = re.compile(r"\r\n?")


def clean_text(value: object) -> str:
    """`value` as a str without control characters (newlines and tabs kept; CR and
    CRLF become LF). Anything that is not a str becomes ""."""
    if not isinstance(value, str):
        return ""
    return _UNWANTED.sub("", _NEWLINES.sub("\n", value))


def cap(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, on a word boundary when there is one
    in the last fifth, marked with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    if space >= limit * 4 // 5:
        head = head[:space]
    return head.rstrip() + ELLIPSIS


def bounded(value: object, limit: int) -> str:
    """Cleaned, stripped and capped: the form of every stored single-line or text field."""
    return cap(clean_text(value).strip(), limit)


def bounded_list(values: Iterable[object], limit_each: int, max_count: int) -> tuple[str, ...]:
    """Cleaned, capped, de-duplicated (first kept) and at most `max_count` non-empty strings."""
    out: dict[str, None] = {}
    for value in values:
        text = bounded(value, limit_each)
        if text:
            out.setdefault(text, None)
            if len(out) >= max_count:
                break
    return tuple(out)


def bounded_url(value: object) -> str | None:
    """A cleaned URL, or None when there is none or it is over MAX_URL."""
    url = clean_text(value).strip()
    return url if url and len(url) <= MAX_URL else None


def bounded_date(value: object) -> datetime | None:
    """An aware UTC datetime inside [EARLIEST, LATEST), else None. Never raises: naive
    values are taken as UTC, and a conversion that overflows counts as out of range."""
    if not isinstance(value, datetime):
        return None
    try:
        dt = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError, OSError, TypeError):  # e.g. a utcoffset over a day
        return None
    return dt if EARLIEST <= dt < LATEST else None
