"""bench/dashboard.py at a tiny size, so the dashboard benchmark cannot rot: it makes,
fills and drops its databases on PostgreSQL, renders every page through the WSGI app and
prints one table row per page, each answered 200. No timing is asserted."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench.dashboard import pages
from tests.conftest import POSTGRES_URL
from tests.helpers.processes import REPO

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def bare(path: str) -> str:
    return re.sub(r"(=|/watchlists/)[^&]*", r"\1", path)


def test_the_dashboard_bench_renders_every_page_at_two_sizes():
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "dashboard.py"),
            *("--articles", "2000", "--matches", "200"),
            *("--baseline-articles", "500", "--baseline-matches", "50"),
            *("--runs", "2", "--admin-url", POSTGRES_URL),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    assert "500 articles / 50 matches" in header and "2,000 articles / 200 matches" in header
    expected = [path for _, path in pages("w0", "w1", "s0", "s1")]
    assert len(body) == len(expected)
    for row, path in zip(body, expected, strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        # the busiest/quietest watchlist and the source are the bench's picks: compare the
        # paths without the names
        shown = re.search(r"\(`([^`]+)`\)", cells[0])
        assert shown is not None and bare(shown.group(1)) == bare(path)
        assert cells[-1] == "200"
        assert all(" / " in c for c in cells[1:-1])  # median / p95 at each size
    assert "filled in" in done.stderr
