"""How the pages show times, durations and a snippet's highlights (jinja2 filters)."""

from __future__ import annotations

from datetime import datetime, timedelta

from worker.core.durations import human


def when(value: datetime | None) -> str:
    """2026-01-01 12:00:05 UTC, or a dash for never."""
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def every(seconds: int | None) -> str:
    return "—" if not seconds else human(timedelta(seconds=seconds))


def segments(snippet: str, highlights: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """The snippet cut into (text, highlighted) pieces, from the stored highlight spans;
    spans out of range or overlapping are clipped, never fatal."""
    out: list[tuple[str, bool]] = []
    at = 0
    for start, end in sorted(highlights):
        start, end = max(start, at), min(end, len(snippet))
        if start >= end:
            continue
        if start > at:
            out.append((snippet[at:start], False))
        out.append((snippet[start:end], True))
        at = end
    if at < len(snippet):
        out.append((snippet[at:], False))
    return out


FILTERS = {"when": when, "every": every}
