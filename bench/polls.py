"""Cost per poll: CPU-ms of newswatch and of urlwatch for the same local feeds, in one run.

    .venv/bin/python bench/polls.py --sources 150 --every 30 --window 40

About 6 minutes with the defaults.

What it runs, all on 127.0.0.1:

- a feed server (asyncio, a process of its own). Feed i has a version; it answers 304 to
  an If-None-Match of the current version. In "unchanged" mode the versions stay put, so
  every poll after the first is a 304. In "changed" mode each request bumps the feed's
  version first, so every poll finds exactly one new item (the feed lists the latest 5).
  newswatch polls `/nw/…` (a host name per source under `.polls.localhost`, as N real
  sites would be), urlwatch polls `/uw/…` on 127.0.0.1: each has feed versions of its own.
  The server counts the answers and the TCP connections it accepted, per client.
- `newswatch run` (the embedded default: its own redis-server and SQLite) with N sources
  `every` seconds apart, a watchlist that never matches and a file channel; no full text.
  Its CPU is the sum over every process of the tree and the embedded redis-server
  (psutil), over a window in which the server counts the polls: CPU / polls.
- urlwatch, installed into a venv of the benchmark's own (`bench/.venv-urlwatch`, made on
  first use; not a project dependency), run once over the same N feeds (`url` jobs send
  If-None-Match) and once over one feed: CPU of the whole run / N is the cost with
  start-up; (CPU(N) - CPU(1)) / (N - 1) without.

With `--full-text` the sources say `full_text: true` and each of newswatch's new items
links to an article page on the same server (`/nw/item/…`, on the source's host), which
newswatch fetches and extracts: the "changed" figure is then one new full-text article,
end to end (feed poll, page fetch, extraction, rules). The pages are counted too.

Each mode is measured `--repeat` times (default 3); printed are min/median/max of CPU-ms
per poll, the polls counted, the connections accepted, and the load average (the machine
may be shared: read the figures beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.idle_memory import roles  # noqa: E402
from bench.load import serve_keepalive  # noqa: E402
from tests.helpers.servers import free_port  # noqa: E402

HOST = "127.0.0.1"
FEED_ITEMS = 5
URLWATCH_VENV = Path(os.environ.get("URLWATCH_VENV", REPO / "bench" / ".venv-urlwatch"))
# the server's counters (an mp.Array of ints)
NW_200, NW_304, UW_200, UW_304, NW_CONN, UW_CONN, OTHER, NW_PAGE = range(8)
CLIENTS = {b"nw": (NW_200, NW_304), b"uw": (UW_200, UW_304)}
FEED_PATH = re.compile(rb"^GET /(nw|uw)/feed/(\d+)\.xml ")
PAGE_PATH = re.compile(rb"^GET /nw/item/(\d+)/(\d+) ")
PAGE = """<html><head><title>Weather update {i}-{k}</title></head><body><nav>Home</nav>
<article><h1>Weather update {i}-{k}</h1><p>{words}</p><p>Officials said more details would
follow later in the week, and that talks would continue in the capital.</p></article>
<footer>Copyright Example</footer></body></html>"""


def feed_body(client: str, i: int, version: int, base: str = f"http://{HOST}") -> bytes:
    """The feed's latest FEED_ITEMS items; their links under `base` (newswatch's host
    and port in --full-text mode, where it fetches them)."""
    items = []
    for k in range(version, max(version - FEED_ITEMS, -1), -1):
        link = f"{base}/{client}/item/{i}/{k}"
        words = " ".join(f"u{i}x{k}y{j}" for j in range(10))  # a story of its own
        items.append(
            f"<item><title>Weather update {i}-{k}</title><link>{link}</link><guid>{link}</guid>"
            f"<description>Weather report {words}</description></item>"
        )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>source '
        f"{i}</title>{''.join(items)}</channel></rss>"
    ).encode()


def page_body(i: int, k: int) -> bytes:
    words = " ".join(f"u{i}x{k}y{j} storm" for j in range(60))  # a story of its own
    return PAGE.format(i=i, k=k, words=words).encode()


def serve_feeds(
    port: int, changed: Any, counts: Any, ready: Any, stop: Any, full_text: bool = False
) -> None:
    """The feed server (a process of its own)."""
    versions: dict[tuple[bytes, int], int] = {}

    def answer(head: bytes, conn: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
        match = FEED_PATH.match(head)
        if match is None and (page := PAGE_PATH.match(head)) is not None:
            counts[NW_PAGE] += 1
            html = page_body(int(page.group(1)), int(page.group(2)))
            return b"200 OK", b"Content-Type: text/html; charset=utf-8\r\n", html
        if match is None:
            counts[OTHER] += 1
            return b"404 Not Found", b"", b"not found"
        client, i = match.group(1), int(match.group(2))
        if not conn:  # a connection's first feed request names its client
            conn["client"] = client
            counts[NW_CONN if client == b"nw" else UW_CONN] += 1
        key = (client, i)
        if changed.value:
            versions[key] = versions.get(key, 0) + 1
        version = versions.setdefault(key, 0)
        etag = f'"{i}-{version}"'.encode()
        ok, not_modified = CLIENTS[client]
        if re.search(rb"(?im)^if-none-match:\s*" + re.escape(etag), head):
            counts[not_modified] += 1
            return b"304 Not Modified", b"ETag: " + etag + b"\r\n", b""
        counts[ok] += 1
        extra = b"ETag: " + etag + b"\r\nContent-Type: application/rss+xml\r\n"
        nw_host = f"http://s{i}.polls.localhost:{port}"
        base = nw_host if full_text and client == b"nw" else f"http://{HOST}"
        return b"200 OK", extra, feed_body(client.decode(), i, version, base)

    serve_keepalive(port, answer, ready, stop)


# --- newswatch ------------------------------------------------------------------------------


def write_config(
    path: Path, n: int, port: int, every: int, alerts: Path, full_text: bool = False
) -> None:
    lines = ["sources:"]
    extra = ", full_text: true" if full_text else ""
    for i in range(n):
        url = f"http://s{i}.polls.localhost:{port}/nw/feed/{i}.xml"
        lines.append(f"  - {{name: s{i}, feed: '{url}', every: {every}s{extra}}}")
    lines += [
        "watchlists:",
        "  - {name: never, keywords: [Zephyr], notify: [archive]}",
        "channels:",
        f"  - {{name: archive, file: '{alerts}'}}",
        "fetch:",
        "  allow_networks: ['.polls.localhost']",
    ]
    path.write_text("\n".join(lines) + "\n")


ROLES: dict[int, str] = {}  # pid -> what it is in the tree (bench/idle_memory.roles), once


def tree_cpu(root: int, data_dir: Path) -> dict[int, float]:
    """CPU seconds (user + system) of every process of the tree and the embedded redis."""
    procs: list[psutil.Process] = []
    with contextlib.suppress(psutil.NoSuchProcess):
        top = psutil.Process(root)
        procs = [top, *top.children(recursive=True)]
    for pidfile in data_dir.rglob("redis.pid"):
        with contextlib.suppress(ValueError, OSError, psutil.NoSuchProcess):
            procs.append(psutil.Process(int(pidfile.read_text().strip())))
    if any(p.pid not in ROLES for p in procs):  # a pool child's role needs its worker's
        ROLES.update(roles(root, procs))
    out: dict[int, float] = {}
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def cpu_by_role(before: dict[int, float], after: dict[int, float], polls: int) -> dict[str, float]:
    """CPU-ms per poll of each part of the tree over one window."""
    out: dict[str, float] = {}
    for pid, cpu in after.items():
        name = ROLES.get(pid, "?")
        out[name] = out.get(name, 0.0) + 1000 * (cpu - before.get(pid, 0.0)) / max(polls, 1)
    return {k: round(v, 3) for k, v in sorted(out.items())}


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# --- urlwatch -------------------------------------------------------------------------------


def urlwatch_bin() -> Path:
    binary = URLWATCH_VENV / "bin" / "urlwatch"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(URLWATCH_VENV)], check=True)
        pip = URLWATCH_VENV / "bin" / "pip"
        subprocess.run([str(pip), "install", "-q", "urlwatch"], check=True)
    return binary


class Urlwatch:
    def __init__(self, work: Path, port: int, n: int) -> None:
        self.binary = urlwatch_bin()
        self.work = work
        self.n = n
        for name, count in (("all", n), ("one", 1)):
            jobs = [f"url: http://{HOST}:{port}/uw/feed/{i}.xml\n" for i in range(count)]
            (work / f"uw-{name}.yaml").write_text("---\n".join(jobs))

    def run(self, which: str) -> float:
        """One urlwatch run over its jobs; its CPU seconds (children included)."""
        argv = [
            str(self.binary),
            "--urls",
            str(self.work / f"uw-{which}.yaml"),
            "--config",
            str(self.work / "uw-config.yaml"),
            "--cache",
            str(self.work / f"uw-{which}.db"),
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"urlwatch exited with {proc.returncode}: {' '.join(argv)}")
        return usage.ru_utime + usage.ru_stime

    def per_poll(self) -> tuple[float, float]:
        """CPU-ms per poll with start-up, and without."""
        whole, one = self.run("all"), self.run("one")
        return 1000 * whole / self.n, 1000 * (whole - one) / max(self.n - 1, 1)


# --- the run --------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sources", type=int, default=150)
    p.add_argument("--every", type=int, default=30, help="seconds between polls of a source")
    p.add_argument("--window", type=float, default=40, help="seconds measured per mode")
    p.add_argument("--settle", type=float, default=6, help="seconds after a mode switch")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--unchanged-only", action="store_true", help="skip the changed mode")
    p.add_argument(
        "--full-text",
        action="store_true",
        help="full_text: true; each new item's page is fetched and extracted",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="newswatch's environment"
    )
    p.add_argument("--json", type=Path, help="write the figures here too")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    return p.parse_args(argv)


def measure_newswatch(
    proc: subprocess.Popen[bytes], data: Path, counts: Any, settle: float, window: float, col: int
) -> tuple[float, int, dict[str, float]]:
    """CPU-ms per poll counted in column `col` over one window, the polls, per part of the tree."""
    time.sleep(settle)
    c0, cpu0 = list(counts), tree_cpu(proc.pid, data)
    time.sleep(window)
    c1, cpu1 = list(counts), tree_cpu(proc.pid, data)
    if proc.poll() is not None:
        raise RuntimeError("newswatch run died")
    polls = c1[col] - c0[col]
    per_poll = 1000 * cpu_between(cpu0, cpu1) / polls if polls else float("nan")
    return per_poll, polls, cpu_by_role(cpu0, cpu1, polls)


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="nw-polls-"))
    port = free_port()
    changed, counts = mp.Value("b", 0), mp.Array("q", 8)
    ready, stop = mp.Event(), mp.Event()
    server = mp.Process(
        target=serve_feeds, args=(port, changed, counts, ready, stop, args.full_text)
    )
    server.start()
    ready.wait(10)
    urlwatch = Urlwatch(work, port, args.sources)
    data = work / "data"
    config = work / "polls.yaml"
    write_config(config, args.sources, port, args.every, work / "alerts.jsonl", args.full_text)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")},
        "NEWSWATCH_CONFIG": str(config),
        "NEWSWATCH_DATA_DIR": str(data),
        "PYTHONUNBUFFERED": "1",
        # the code next to this script (a checkout of another commit measures that commit)
        "PYTHONPATH": str(REPO),
    }
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    env.update(pair.split("=", 1) for pair in args.set)
    out: dict[str, Any] = {
        "sources": args.sources,
        "every": args.every,
        "window": args.window,
        "full_text": args.full_text,
    }
    figures: dict[str, list[float]] = {
        k: [] for k in ("nw304", "nw200", "uw304", "uw304_bare", "uw200", "uw200_bare")
    }
    polls: dict[str, list[int]] = {"nw304": [], "nw200": []}
    parts: dict[str, list[dict[str, float]]] = {"nw304": [], "nw200": []}
    loads: list[float] = []
    log = open(work / "newswatch.log", "wb")  # noqa: SIM115 - the child's
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "run"],
        env=env,
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        urlwatch.run("all")  # first runs: every job new, ETags stored
        urlwatch.run("one")
        # the first round (every feed new, 5 items each) before anything is measured
        time.sleep(args.every + 15)
        for _ in range(args.repeat):
            changed.value = 0
            urlwatch.run("all")  # after a changed round its ETags are one version behind
            urlwatch.run("one")
            ms, n, by_role = measure_newswatch(proc, data, counts, args.settle, args.window, NW_304)
            figures["nw304"].append(ms)
            polls["nw304"].append(n)
            parts["nw304"].append(by_role)
            with_start, bare = urlwatch.per_poll()
            figures["uw304"].append(with_start)
            figures["uw304_bare"].append(bare)
            loads.append(os.getloadavg()[0])
            if args.unchanged_only:
                continue
            changed.value = 1
            ms, n, by_role = measure_newswatch(proc, data, counts, args.settle, args.window, NW_200)
            figures["nw200"].append(ms)
            polls["nw200"].append(n)
            parts["nw200"].append(by_role)
            with_start, bare = urlwatch.per_poll()
            figures["uw200"].append(with_start)
            figures["uw200_bare"].append(bare)
            loads.append(os.getloadavg()[0])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        stop.set()
        server.join(10)
    out.update(
        figures={k: [round(v, 3) for v in vs] for k, vs in figures.items()},
        polls=polls,
        per_process=parts,
        counts=dict(
            zip(
                ["nw200", "nw304", "uw200", "uw304", "nw_conn", "uw_conn", "other", "nw_pages"],
                counts[:],
                strict=True,
            )
        ),
        loadavg_1min=[round(v, 2) for v in loads],
        log_lines=sum(1 for _ in (work / "newswatch.log").open("rb")),
    )
    if args.keep:
        print(f"work folder kept: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return out


def report(out: dict[str, Any]) -> None:
    f = out["figures"]
    print(
        f"{out['sources']} feeds every {out['every']}s, windows of {out['window']}s; "
        f"load average (1 min) {min(out['loadavg_1min'])}-{max(out['loadavg_1min'])}"
    )
    print("CPU-ms per poll, min / median / max of the repetitions")
    print("| per poll | newswatch | urlwatch (with start-up) | urlwatch (without) |")
    print("|---|---|---|---|")
    print(
        f"| unchanged (304) | {spread(f['nw304'])} | {spread(f['uw304'])} "
        f"| {spread(f['uw304_bare'])} |"
    )
    if f["nw200"]:
        what = "one new full-text article" if out.get("full_text") else "one new item"
        print(
            f"| changed, {what} | {spread(f['nw200'])} | {spread(f['uw200'])} "
            f"| {spread(f['uw200_bare'])} |"
        )
    for mode, label in (("nw304", "unchanged"), ("nw200", "changed")):
        for name in sorted({k for d in out.get("per_process", {}).get(mode, []) for k in d}):
            values = [d.get(name, 0.0) for d in out["per_process"][mode]]
            print(f"  newswatch {label}, {name}: {spread(values)} CPU-ms per poll")
    print(
        f"polls per window: {out['polls']}; answers and connections: {out['counts']}; "
        f"newswatch log lines: {out['log_lines']}"
    )


def main(argv: list[str] | None = None) -> int:
    args = main_args(argv)
    out = run(args)
    report(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
