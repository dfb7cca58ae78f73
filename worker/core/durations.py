"""Durations as people read them in notices and status lines ("45 s", "12 min", "3.5 h")."""

from __future__ import annotations

from datetime import timedelta


def human(delta: timedelta) -> str:
    """A non-negative span in the unit that keeps it short: seconds under two minutes,
    minutes under two hours, hours under two days, then days."""
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
