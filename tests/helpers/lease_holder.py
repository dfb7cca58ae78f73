"""A process that holds per-host slots and a robots.txt lock in Redis, as a fetcher does
in the middle of slow fetches, for the lease tests: takes them, prints one JSON line,
then holds them until a line arrives on stdin (or until it is killed), gives them back
and prints a second line.

    python -m tests.helpers.lease_holder REDIS_URL LEASE_TTL HOST SLOTS ROBOTS_SITE
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack

from worker.http.deadline import Deadline
from worker.http.shared_limits import SharedHostLimiter, SharedRedis, SharedRobotsStore


def main(argv: list[str]) -> int:
    redis_url, lease_ttl, host, slots, site = argv
    shared = SharedRedis(redis_url, lease_ttl=float(lease_ttl))
    limiter = SharedHostLimiter(shared, max_concurrent=int(slots), min_interval=0.0)
    store = SharedRobotsStore(shared)
    with ExitStack() as stack:
        for _ in range(int(slots)):
            stack.enter_context(limiter.slot(host, Deadline(60.0)))
        token = store.lock(site)
        print(json.dumps({"held": token is not None}), flush=True)
        sys.stdin.readline()
        if token is not None:
            store.unlock(site, token)
    print(json.dumps({"released": True}), flush=True)
    shared.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
