"""One fetcher process for the shared-politeness tests: waits for a start file, then
fetches the URLs given, with its limits in the Redis given, and prints one JSON line
per URL (the status, or the error kind).

    python -m tests.helpers.polite_fetcher REDIS_URL MIN_INTERVAL START_FILE URL...

POLITE_FETCHER_LATE=SECONDS in the environment holds every request after the first
back that long between its turn and its send, as a busy scheduler can hold a thread;
POLITE_FETCHER_MAX=N sets the requests per host at once (default 2).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from pathlib import Path

from worker.config import FetchSpec
from worker.config.to_sources import fetch_options
from worker.http.errors import FetchError
from worker.http.fetcher import Fetcher


def main(argv: list[str]) -> int:
    redis_url, min_interval, start_file, *urls = argv
    spec = FetchSpec(deadline=60.0, allow_networks=("127.0.0.0/8",))  # type: ignore[call-arg]
    fetcher = Fetcher(
        fetch_options(spec),
        respect_robots=True,
        max_per_host=int(os.environ.get("POLITE_FETCHER_MAX", "2")),
        min_interval=float(min_interval),
        shared_url=redis_url or None,
    )
    late = float(os.environ.get("POLITE_FETCHER_LATE", "0"))
    if late > 0:
        calls = itertools.count()
        fetcher._limiter.before_send = lambda _host: time.sleep(late) if next(calls) else None
    print(json.dumps({"ready": True}), flush=True)
    while not Path(start_file).exists():  # all processes start together
        time.sleep(0.005)
    for url in urls:
        try:
            outcome: object = fetcher.get(url).status
        except FetchError as exc:
            outcome = exc.kind
        print(json.dumps({"url": url, "outcome": outcome}), flush=True)
    fetcher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
