"""Memory of the embedded default at idle: `newswatch run` with one source, after its first poll.

    .venv/bin/python bench/idle_memory.py                  # about 80 s
    .venv/bin/python bench/idle_memory.py --idle 60 --json

What it runs, all on 127.0.0.1: a feed server (a thread of this process) with one RSS
feed of three items whose links are article pages, and `newswatch run` (its own
redis-server, SQLite in a temporary data folder) with one source (`full_text: true`,
every 5 minutes), a watchlist that matches one of the items and a file channel. So the
first poll goes through every stage once (fetch, extract, parse, rules, an alert), then
the service idles. After `--idle` seconds every process of its tree and the embedded
redis-server is sampled with psutil: RSS, PSS (shared pages divided among the processes
that map them, so the sum counts each page once) and USS (pages of that process alone).
Printed: one row per process with its role, and the sums. PSS is the figure to read;
summed RSS counts the pages shared between the prefork parent and its children, and
the libraries every Python process maps, once per process.

The code measured is the checkout next to this script (`PYTHONPATH`), so a worktree of
another commit measures that commit.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
PAGE = """<!doctype html><html><head><title>{title}</title></head><body>
<header><nav><a href="/">Home</a> <a href="/world">World</a></nav></header>
<article><h1>{title}</h1><p class="byline">By A. Reporter, 4 December 2026</p>
{paragraphs}</article><footer>Copyright The Local Paper</footer></body></html>"""


def _page(i: int) -> bytes:
    words = "The council met on Tuesday to discuss the harbour works and the budget."
    extra = " Observers said the Quokka report was read aloud." if i == 0 else ""
    paragraphs = "".join(f"<p>{words} Paragraph {k} of story {i}.{extra}</p>" for k in range(8))
    return PAGE.format(title=f"Story {i}", paragraphs=paragraphs).encode()


def _feed(port: int) -> bytes:
    items = "".join(
        f"<item><title>Story {i}</title><link>http://127.0.0.1:{port}/a/{i}.html</link>"
        f"<guid>story-{i}</guid><description>Summary of story {i}</description></item>"
        for i in range(3)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Local</title>{items}'
        "</channel></rss>"
    ).encode()


def serve(port_box: list[int]) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            port = port_box[0]
            if self.path == "/feed.xml":
                etag = '"v1"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                body, kind = _feed(port), "application/rss+xml"
            elif self.path.startswith("/a/"):
                body, kind = _page(int(self.path[3:].split(".")[0])), "text/html; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if self.path == "/feed.xml":
                self.send_header("ETag", '"v1"')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_box.append(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def write_config(path: Path, port: int, alerts: Path) -> None:
    path.write_text(
        f"""sources:
  - name: local
    feed: http://127.0.0.1:{port}/feed.xml
    every: 5m
    full_text: true
watchlists:
  - name: quokka
    keywords: [Quokka]
    notify: [archive]
channels:
  - name: archive
    file: {alerts}
fetch:
  allow_networks: [127.0.0.0/8]
""",
        encoding="utf-8",
    )


def role(p: psutil.Process, root: int, workers: dict[int, str]) -> str:
    """What a process of `newswatch run` is, from its place in the tree and its argv."""
    if p.pid == root:
        return "supervisor (run)"
    with contextlib.suppress(psutil.Error):
        cmd = " ".join(p.cmdline())
        if "redis-server" in cmd or "valkey-server" in cmd:
            return "redis-server"
        if p.pid in workers:
            return f"{workers[p.pid]} worker, main"
        parent = p.ppid()
        if parent in workers:
            # `worker --beat` forks beat from the worker's main process, as it forks the
            # pool: the pool's children hold pipes to it, beat holds none
            pipes = [f for f in os.listdir(f"/proc/{p.pid}/fd") if _is_pipe(p.pid, f)]
            return f"{workers[parent]} pool child" if pipes else "beat"
    return "?"


def roles(root: int, procs: list[psutil.Process]) -> dict[int, str]:
    """`role` of each process of `newswatch run`'s tree (root: the `run` process)."""
    workers: dict[int, str] = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            cmd = p.cmdline()
            if "worker" in cmd and p.ppid() == root:
                workers[p.pid] = "threads (fetch, alerts)" if "--pool=threads" in cmd else "prefork"
    return {p.pid: role(p, root, workers) for p in procs}


def _is_pipe(pid: int, fd: str) -> bool:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
    return False


def sample(root: int, data: Path) -> list[dict[str, Any]]:
    top = psutil.Process(root)
    procs = [top, *top.children(recursive=True)]
    for pidfile in data.rglob("redis.pid"):  # a child of `run`; just in case it is not
        with contextlib.suppress(ValueError, OSError, psutil.Error):
            server = psutil.Process(int(pidfile.read_text().strip()))
            if server.pid not in {p.pid for p in procs}:
                procs.append(server)
    named = roles(root, procs)
    rows = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            m = p.memory_full_info()
            rows.append(
                {
                    "pid": p.pid,
                    "role": named[p.pid],
                    "rss_mb": m.rss / MB,
                    "pss_mb": m.pss / MB,
                    "uss_mb": m.uss / MB,
                }
            )
    order = ["supervisor", "redis", "threads", "prefork worker", "beat", "prefork pool"]
    rows.sort(
        key=lambda r: (
            next((i for i, o in enumerate(order) if str(r["role"]).startswith(o)), 9),
            r["pid"],
        )
    )
    return rows


def report(rows: list[dict[str, Any]], idle: float) -> None:
    print(f"newswatch run, one source, {idle:.0f} s after start (MB)")
    print(f"{'process':32} {'pid':>7} {'RSS':>7} {'PSS':>7} {'USS':>7}")
    for r in rows:
        print(
            f"{r['role']:32} {r['pid']:>7} {r['rss_mb']:7.1f} {r['pss_mb']:7.1f} {r['uss_mb']:7.1f}"
        )
    total = {k: sum(r[k] for r in rows) for k in ("rss_mb", "pss_mb", "uss_mb")}
    print(
        f"{'sum (' + str(len(rows)) + ' processes)':32} {'':>7} "
        f"{total['rss_mb']:7.1f} {total['pss_mb']:7.1f} {total['uss_mb']:7.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--idle", type=float, default=60.0, help="seconds from start to the sample")
    ap.add_argument("--json", action="store_true", help="also print the rows as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="nw-idle-"))
    port_box: list[int] = []
    server = serve(port_box)
    config, alerts, data = work / "idle.yaml", work / "alerts.jsonl", work / "data"
    write_config(config, port_box[0], alerts)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    env.update(
        NEWSWATCH_CONFIG=str(config),
        NEWSWATCH_DATA_DIR=str(data),
        PYTHONPATH=str(REPO),  # the code next to this script
    )
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
        time.sleep(args.idle)
        if proc.poll() is not None:
            raise SystemExit(f"newswatch run died; its log: {work / 'newswatch.log'}")
        rows = sample(proc.pid, data)
        alerted = alerts.exists() and alerts.stat().st_size > 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        server.shutdown()
    report(rows, args.idle)
    print(f"first poll went through to an alert: {'yes' if alerted else 'NO'}")
    if args.json:
        print(json.dumps(rows, indent=1))
    if args.keep:
        print(f"work folder kept: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if alerted else 1


if __name__ == "__main__":
    sys.exit(main())
