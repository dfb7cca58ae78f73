"""`newswatch web` as a real process: where it listens, and the token it then needs."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.processes import REPO, _clean_environ, run_cli
from tests.web.conftest import Filled
from tests.web.test_pages import get


def env_for(filled: Filled, **extra: str) -> dict[str, str]:
    settings = filled.rt.settings
    return {
        "DATABASE_URL": settings.database_url,
        "NEWSWATCH_CONFIG": str(filled.config),
        "NEWSWATCH_DATA_DIR": str(settings.data_dir),
        **extra,
    }


@contextmanager
def web(filled: Filled, *args: str, **env: str) -> Iterator[str]:
    """`newswatch web --port 0 ARGS` running; yields the port it printed. Its log (one
    line per request) goes to a file, so that a full pipe never blocks it."""
    log = (filled.config.parent / "web.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "web", "--port", "0", *args],
        cwd=REPO,
        env={**_clean_environ(), **env_for(filled, **env)},
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        found = re.search(r"http://\S+:(\d+)/", line)
        if not found:
            proc.wait(30)
            raise AssertionError(line + (filled.config.parent / "web.log").read_text())
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_web_listens_on_loopback_by_default_and_serves_the_pages(filled: Filled):
    with web(filled) as port:
        status, _, html = get(f"http://127.0.0.1:{port}/alerts")
        assert status == 200 and "Militia leaders meet in Baghdad" in html


def test_web_refuses_to_listen_beyond_loopback_without_a_token(filled: Filled, tmp_path: Path):
    for host in ("0.0.0.0", "::", "example.org"):
        run = run_cli("web", "--host", host, "--port", "0", env=env_for(filled), text=True)
        assert run.returncode == 2, run.stderr
        assert "refusing to listen" in run.stderr and "NEWSWATCH_WEB_TOKEN" in run.stderr
        assert "Traceback" not in run.stderr


def test_web_beyond_loopback_with_a_token_asks_for_it_on_every_request(filled: Filled):
    # listening on every address; the test only ever connects to 127.0.0.1
    with web(filled, "--host", "0.0.0.0", NEWSWATCH_WEB_TOKEN="tok-123") as port:
        base = f"http://127.0.0.1:{port}"
        assert get(base + "/sources")[0] == 401
        assert get(base + "/static/uPlot.iife.min.js")[0] == 401
        assert get(base + "/sources?token=nope")[0] == 401
        status, _, html = get(base + "/sources?token=tok-123")
        assert status == 200 and "gone-feed" in html
        assert get(base + "/deliveries", {"X-Newswatch-Token": "tok-123"})[0] == 200
