"""What a request pays for its per-host slot: in-process limiter vs the Redis one.

    .venv/bin/python bench/politeness.py [--n 5000]

Starts a private redis-server on 127.0.0.1 (tests/helpers/servers.py), then times
`slot()` enter + exit `--n` times for one host with no spacing (min_interval 0), so
only the bookkeeping is measured: the in-process `HostLimiter` (baseline) and
`SharedHostLimiter` (one Lua script call in, one ZREM out) over TCP to 127.0.0.1.
Figures go in docs/fetching.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.servers import RedisServer
from worker.http.deadline import Deadline
from worker.http.host_limits import HostLimiter, Limiter
from worker.http.shared_limits import SharedHostLimiter, SharedRedis


def per_slot_us(limiter: Limiter, n: int) -> float:
    samples = []
    deadline = Deadline(600.0)  # one for all: arming a deadline is not what is measured
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            with limiter.slot("example.org", deadline):
                pass
        samples.append((time.perf_counter() - t0) / n * 1e6)
    deadline.finish()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    n = parser.parse_args().n
    print(f"in-process HostLimiter: {per_slot_us(HostLimiter(2, 0.0), n):8.1f} µs per slot")
    with RedisServer() as server:
        shared = SharedRedis(server.url)
        redis_us = per_slot_us(SharedHostLimiter(shared, 2, 0.0), n)
        print(f"SharedHostLimiter, TCP: {redis_us:8.1f} µs per slot")
        shared.close()
    print(f"(median of 5 runs of {n}; Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
