"""bench/load.py must keep working: a tiny run (10 sources, 18 seconds after the first
round, SQLite and a private Redis) through the real worker and beat, checked for sane figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.servers import redis_binary

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(redis_binary() is None, reason="no redis-server binary for a private Redis")
def test_load_harness_smoke() -> None:
    out = subprocess.run(
        [
            sys.executable, str(REPO / "bench" / "load.py"),
            "--sources", "10", "--interval", "3", "--after-first-round", "18",
            "--duration", "60", "--item-every", "6",
            "--hit-percent", "50", "--database", "sqlite", "--concurrency", "2", "--json",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (result,) = json.loads(out.stdout)
    assert result["sources"] == 10 and result["workers"] == 1
    assert result["fetches_per_s"] > 0
    assert result["polls_304"] > 0  # conditional GETs answered 304
    assert result["alerts"] > 0  # items published in the run reached the file channel
    assert result["lag_pipeline_p50"] is not None and result["lag_pipeline_p50"] >= 0
    # a share of sources polled on time: a timing figure, which a busy machine may bring
    # to 0 (tests assert no timings); how it is computed: test_kept_up_counts_late_sources
    assert 0 <= result["kept_up"] <= 1
    assert result["worker_rss_mb"][0] > 0
    assert 0 < result["newswatch_pss_mb"] <= result["newswatch_rss_mb"]
    # the steady state after the first round: measured apart, for as long as asked
    assert result["first_round_s"] is not None
    assert result["steady_s"] >= 17
    assert result["newswatch_cpu_s_steady"] > 0
    assert 0 <= result["alerts_steady"] <= result["alerts"]


def test_kept_up_counts_late_sources() -> None:
    """bench/load.py's kept-up share, on made-up poll times: every 10 s, one source late."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import load
    finally:
        sys.path.remove(str(REPO / "bench"))
    args = load.main_args(["--sources", "2", "--interval", "10", "--jitter", "0"])
    on_time = [0.0, 10.0, 20.0, 30.0, 40.0]
    late = [0.5, 10.5, 35.0, 40.5]  # 24.5 s between two polls: more than 10 s + slack
    assert load.kept_up({0: on_time, 1: on_time}, args, 0.0, 45.0) == 1.0
    assert load.kept_up({0: on_time, 1: late}, args, 0.0, 45.0) == 0.5
    assert load.kept_up({0: on_time}, args, 0.0, 45.0) == 0.5  # one never polled


def _load_module():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import load
    finally:
        sys.path.remove(str(REPO / "bench"))
    return load


def test_site_rates_find_a_site_over_its_limit() -> None:
    """bench/load.py's per-site figures, on made-up request times (min_interval 0.2 s):
    one site 0.25 s apart, one with two requests 30 ms apart (two processes that each
    kept only their own turn)."""
    load = _load_module()
    polite = [0.0, 0.25, 0.5, 0.75, 1.0]
    clash = [0.0, 0.03, 0.4, 0.65]
    rates = load.site_rates({"a": polite}, 0.2, 0.0, 10.0, robots=1)
    assert (rates.max_in_interval, rates.gaps_under, rates.gaps_under_half) == (1, 0, 0)
    assert rates.max_per_s == 4 and rates.min_gap_ms == 250.0
    rates = load.site_rates({"a": polite, "b": clash}, 0.2, 0.0, 10.0, robots=2)
    assert rates.hosts == 2 and rates.requests == 9 and rates.gaps == 7
    assert rates.max_in_interval == 2 and rates.min_gap_ms == 30.0
    assert (rates.gaps_under, rates.gaps_under_half, rates.hosts_under) == (1, 1, 1)
    # requests outside the measured window do not count
    assert load.site_rates({"b": clash}, 0.2, 0.1, 10.0, robots=0).gaps_under == 0


def test_sources_share_hosts() -> None:
    load = _load_module()
    assert load.host_name(0, 20) == load.host_name(19, 20) != load.host_name(20, 20)
    assert load.host_name(7, 1) == "s7.load.localhost"  # one host per source, as before
    assert load.max_in_window([0.0, 0.1, 0.2, 0.95, 1.0, 1.05], 1.0) == 5  # 0.1 to 1.05
