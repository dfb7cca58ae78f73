"""CPU per HTTP exchange: one conditional GET answered 304 on a kept-alive loopback
connection, by each client this project could poll with.

    .venv/bin/python bench/exchange.py --requests 2000 --repeat 5

A keep-alive server (bench/load.py's `serve_keepalive`, a process of its own) answers
every request with 304. In this process, each client sends `--requests` GETs with an
If-None-Match, round after round (the clients alternate, so that a change of load on a
shared machine falls on all of them alike), and the CPU of this process (all its threads:
the deadline watchdog counts) is divided by the requests:

- `http.client`: one HTTPConnection, request + getresponse + read; the floor.
- `requests.Session`: `session.get(url, headers=…)`, a plain Session.
- `fetcher via Session`: `Fetcher.get` with its GETs sent through `requests.Session`
  (the path before worker/http/plain_get.py).
- `fetcher`: `Fetcher.get` as it runs: the plain GET to the guarded pool, the SSRF guard
  on the connection, the deadline, the size cap, the per-host slot (this process's).
- with `--redis URL`, also `fetcher, shared slots`: the same with the per-host slot held
  in that Redis (`shared_url`), as `newswatch run` fetches.

Printed: min / median / max of CPU-ms per exchange over the rounds, and the load average.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from bench.load import HOST, serve_keepalive  # noqa: E402
from tests.helpers.servers import free_port  # noqa: E402
from worker.http.fetcher import Fetcher, FetchOptions  # noqa: E402

ETAG = '"v1"'


def answer(_head: bytes, _conn: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    return b"304 Not Modified", b'ETag: "v1"\r\n', b""


def clients(
    url: str, redis_url: str | None, closers: list[Callable[[], None]]
) -> dict[str, Callable[[], None]]:
    """The clients by name; what closes their connections is added to `closers`."""
    options = FetchOptions(
        user_agent="newswatch-bench/1",
        connect_timeout=5.0,
        read_timeout=5.0,
        deadline=10.0,
        max_bytes=1 << 20,
        allow_networks=(f"{HOST}/32",),
    )
    conn = http.client.HTTPConnection(HOST, int(url.rsplit(":", 1)[1].split("/")[0]))
    path = "/" + url.split("/", 3)[3]

    def plain() -> None:
        conn.request("GET", path, headers={"If-None-Match": ETAG})
        response = conn.getresponse()
        response.read()
        assert response.status == 304

    session = requests.Session()

    def with_session() -> None:
        assert session.get(url, headers={"If-None-Match": ETAG}).status_code == 304

    def fetcher_get(fetcher: Fetcher) -> Callable[[], None]:
        def get() -> None:
            assert fetcher.get(url, etag=ETAG, respect_robots=False).not_modified

        return get

    via_session = Fetcher(options, min_interval=0.0)
    via_session._plain.open = lambda *_a, **_k: None  # type: ignore[method-assign]
    fetcher = Fetcher(options, min_interval=0.0)
    closers += [conn.close, session.close, via_session.close, fetcher.close]
    made = {
        "http.client": plain,
        "requests.Session": with_session,
        "fetcher via Session": fetcher_get(via_session),
        "fetcher": fetcher_get(fetcher),
    }
    if redis_url:
        shared = Fetcher(options, min_interval=0.0, shared_url=redis_url)
        closers.append(shared.close)
        made["fetcher, shared slots"] = fetcher_get(shared)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per client per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds")
    parser.add_argument("--redis", default=None, help="a Redis URL for the shared slots")
    args = parser.parse_args()

    port = free_port()
    ready, stop = mp.Event(), mp.Event()
    server = mp.Process(target=serve_keepalive, args=(port, answer, ready, stop), daemon=True)
    server.start()
    closers: list[Callable[[], None]] = []
    try:
        if not ready.wait(10):
            raise SystemExit("the 304 server did not start")
        made = clients(f"http://{HOST}:{port}/feed.xml", args.redis, closers)
        for send in made.values():  # warm up: connections made, caches filled
            for _ in range(50):
                send()
        cpu: dict[str, list[float]] = {name: [] for name in made}
        loads = [os.getloadavg()[0]]
        for _ in range(args.repeat):
            for name, send in made.items():
                start = time.process_time()
                for _ in range(args.requests):
                    send()
                cpu[name].append((time.process_time() - start) * 1000 / args.requests)
            loads.append(os.getloadavg()[0])
    finally:
        for close in closers:
            close()
        time.sleep(0.3)  # the server sees the connections end before it stops
        stop.set()
        server.join(5)
    print(f"CPU-ms per 304 exchange ({args.requests} x {args.repeat} rounds), min / median / max")
    for name, values in cpu.items():
        print(
            f"  {name:24} {min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"
        )
    print(f"load average (1 min) during the run: {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    main()
