"""Where an unchanged poll's CPU goes inside the fetch batch (no Celery): a profile.

    .venv/bin/python bench/batch_profile.py --sources 200 --rounds 5

A local HTTP/1.1 server (keep-alive, a thread per connection) answers every feed 304 to
its ETag; N sources, each on a host name of its own under `.prof.localhost` (loopback,
no DNS), in SQLite. After a first round (200s, robots.txt), `--rounds` rounds of
dispatch + `batch.fetch_batch` run under cProfile on one thread (the batch's fetch
threads set to 1, so the profiler sees the HTTP exchanges too). Prints CPU-ms per poll
(process time, the server's threads included: read it as an upper bound) and the
functions with the most cumulative and own time. Politeness is the in-process limiter
here; `newswatch run` shares it in Redis (worker/http/shared_limits.py).
"""

from __future__ import annotations

import argparse
import cProfile
import http.server
import io
import pstats
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.pipeline import Clock, make_runtime, rss  # noqa: E402
from worker.sources import batch  # noqa: E402

BODY = rss(("One", "http://example.test/1")).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/robots.txt":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.headers.get("If-None-Match") == '"v1"':
            self.send_response(304)
            self.send_header("ETag", '"v1"')
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)


def one_round(rt, clock: Clock) -> int:
    clock.advance(3600)
    polls = 0
    for ids, _countdown in batch.dispatch_batches(rt, limit=100_000):
        batch.fetch_batch(rt, ids)
        polls += len(ids)
    return polls


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sources", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--callers", action="append", default=[], help="who calls functions like this")
    args = p.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    lines = "\n".join(
        f"  - {{name: s{i}, feed: 'http://s{i}.prof.localhost:{port}/f.xml', every: 5m}}"
        for i in range(args.sources)
    )
    config = f"sources:\n{lines}\nallow_empty: true\nfetch:\n  allow_networks: [127.0.0.0/8]\n"
    work = Path(tempfile.mkdtemp(prefix="nw-prof-"))
    clock = Clock()
    rt = make_runtime(work, f"sqlite:///{work / 'nw.db'}", config, clock)
    rt.settings = replace(rt.settings, fetch_batch_threads=1)
    one_round(rt, clock)  # first round: 200s, robots.txt, connections made
    profile = cProfile.Profile()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    profile.enable()
    polls = sum(one_round(rt, clock) for _ in range(args.rounds))
    profile.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"{polls} polls (304): {1000 * cpu / polls:.2f} CPU-ms per poll under cProfile")
    print(f"({1000 * wall / polls:.2f} ms wall per poll, one thread)")
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(key).print_stats(args.top)
        print(out.getvalue())
    for name in args.callers:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).print_callers(name)
        print(out.getvalue())
    # the same rounds without the profiler: the CPU per poll it does not inflate
    cpu0 = time.process_time()
    polls = sum(one_round(rt, clock) for _ in range(args.rounds))
    print(
        f"without the profiler: {1000 * (time.process_time() - cpu0) / polls:.2f} CPU-ms per poll"
    )
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
