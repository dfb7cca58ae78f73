"""How long a failed unit of work waits before its next try."""

from __future__ import annotations

import random
from datetime import timedelta

MAX_BACKOFF = timedelta(hours=6)


def backoff(base_seconds: float, failures: int, cap: timedelta = MAX_BACKOFF) -> timedelta:
    """Exponential with full jitter on the upper half: spreads retries of many rows."""
    seconds = min(base_seconds * (2 ** max(failures - 1, 0)), cap.total_seconds())
    return timedelta(seconds=seconds * random.uniform(0.5, 1.0))
