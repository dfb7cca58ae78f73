"""One fetcher process for the shared-politeness tests: waits for a start file, then
fetches the URLs given, with its limits in the Redis given, and prints one JSON line
per URL (the status, or the error kind).

    python -m tests.helpers.polite_fetcher REDIS_URL MIN_INTERVAL START_FILE URL...
"""

from __future__ import annotations

import json
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
        min_interval=float(min_interval),
        shared_url=redis_url or None,
    )
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
