"""The config's `fetch:` section, mapped into the fetcher's own options."""

from __future__ import annotations

from worker.config import FetchSpec
from worker.http.fetcher import FetchOptions


def fetch_options(spec: FetchSpec) -> FetchOptions:
    """`min_interval` is not an option of each request: the caller passes it to the
    Fetcher with the other per-host limits."""
    return FetchOptions(
        user_agent=spec.user_agent,
        connect_timeout=spec.connect_timeout,
        read_timeout=spec.read_timeout,
        deadline=spec.deadline,
        max_bytes=spec.max_bytes,
        allow_networks=tuple(spec.allow_networks),
    )
