"""bench/soak.py part A at a tiny size, so the soak cannot rot: weeks of simulated time
through the real pipeline steps, with its restarts, config edits, a Redis restart, a
killed worker and a disk-full episode, end with every matching item alerted exactly
once per channel and the rows of every kind bounded by retention."""

from __future__ import annotations

import json

import pytest

from bench.soak import Options, part_a, window_slopes
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_short_soak_alerts_every_match_once_and_levels_off(tmp_path, database):
    opts = Options(
        sources=2,
        days=8,
        item_every=7200,  # 12 items a source a day: the test is about behaviour, not load
        hit_percent=50,
        article_text="3d",
        attempts="2d",
        deliveries="4d",
        entries="4d",
        report_every=2,
        database=database,
        disk_full="inject",  # the same on both backends, and no mount needed
        postgres=POSTGRES_URL,
        workdir=tmp_path,
        out=lambda _line: None,
    )
    result = part_a(opts)
    assert result.unexpected_errors == []
    # every fault happened and bit
    assert result.failures_in_episode > 0 and result.injected > 0
    assert result.lost_messages > 0
    assert [k.split("(")[0] for k in result.killed] == ["parse", "deliver"]
    assert result.swept["items"] > 0
    # exactly once, on both channels, including the keyword added mid-run
    assert result.expected_alerts > 0
    for channel in result.channels.values():
        assert channel["alerts"] == result.expected_alerts
        assert channel["missing"] == channel["extra"] == channel["twice"] == 0
    assert result.exactly_once
    # retention keeps the rows bounded: at most `entries` (plus a step) of items of the
    # sources alive then, the added-and-removed one included
    last = result.snapshots[-1]
    assert last.day == 8
    assert last.rows["items"] <= (4 + 0.25) * 12 * 3
    assert last.rows["article_text"] <= (3 + 0.25) * 12 * 3
    if database == "sqlite":  # PostgreSQL's size counts space autovacuum has not reused
        # (at this size whole pages dominate: the two costs are not compared)
        assert result.stub_bytes_per_item > 0 and result.text_bytes_per_item > 0


def test_slopes_read_a_window_of_the_samples(tmp_path):
    """part B's samples file: a process that grows 1 MiB per hour, read after its warm-up."""
    samples = tmp_path / "samples.jsonl"
    rows = [["w main", t, 100 * 2**20 + (t / 3600) * 2**20] for t in range(0, 7201, 600)]
    rows.append(["w main", 0, 500 * 2**20])  # a warm-up outlier, left out below
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = window_slopes(samples, after=600, before=7200)
    assert table[2] == "| w main | 12 | 600–7200 | 100.2 / 102.0 | +1.00 |"
