"""How the pages show times, durations and a snippet's highlights (jinja2 filters)."""

from __future__ import annotations

from datetime import datetime, timedelta

from worker.alerts.render import split_highlights
from worker.core.durations import human


def when(value: datetime | None) -> str:
    """2026-01-01 12:00:05 UTC, or a dash for never."""
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def every(seconds: int | None) -> str:
    return "—" if not seconds else human(timedelta(seconds=seconds))


def segments(snippet: str, highlights: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """The snippet cut into (text, highlighted) pieces, from the stored highlight spans;
    spans out of range or overlapping are clipped, never fatal."""
    return [(s.text, s.hit) for s in split_highlights(snippet, highlights)]


FILTERS = {"when": when, "every": every}
