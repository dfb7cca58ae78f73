"""How notice titles read: durations ("failing for 0 h" was the bug) and refused configs."""

from __future__ import annotations

from datetime import timedelta

from worker.alerts.notices import failing_for, rejected_title


def test_failing_for_says_minutes_under_an_hour_then_hours_then_days():
    assert failing_for(timedelta(minutes=30)) == "30 min"
    assert failing_for(timedelta(minutes=59, seconds=59)) == "59 min"
    assert failing_for(timedelta(hours=2)) == "2 h"
    assert failing_for(timedelta(hours=47)) == "47 h"
    assert failing_for(timedelta(days=3)) == "3 days"


def test_a_rejected_config_title_names_the_file_and_the_first_problem():
    error = "cfg/a.yaml:7: watchlists[x].notify: no channel named 'y'\ncfg/a.yaml:9: other"
    assert (
        rejected_title(error)
        == "config rejected: cfg/a.yaml:7: watchlists[x].notify: no channel named 'y'"
    )
    assert len(rejected_title("f.yaml:1: " + "x" * 1000)) <= 200
