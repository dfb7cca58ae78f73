"""A running service whose config is emptied or cut down (issue 11, "Emptied config").

An emptied file is refused on reload like any broken edit: the last good version stays in
force, the sources stay enabled, and a `config_rejected` notice says why. A reload that
removes more than half of the sources or of the watchlists is applied (it may be meant),
but never silently: a WARNING log line and one `config_shrunk` notice per version.
"""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select

from tests.helpers.pipeline import Clock, make_runtime
from tests.helpers.schemas import webhook_validator
from worker.alerts import sending
from worker.alerts.notices import check_notices
from worker.sources import polling
from worker.store import models as m


def config_text(ops: str, sources: list[str], watchlists: list[str]) -> str:
    lines = ["sources:"]
    lines += [f"  - {{name: {s}, feed: 'http://127.0.0.1:9/{s}.xml', every: 1m}}" for s in sources]
    lines += ["watchlists:"]
    lines += [f"  - {{name: {w}, keywords: [{w}], notify: [ops]}}" for w in watchlists]
    lines += ["channels:", f"  - {{name: ops, file: '{ops}'}}", "notices: {channel: ops}"]
    return "\n".join(lines) + "\n"


SOURCES = ["a", "b", "c", "d"]
WATCHLISTS = ["alpha", "beta", "gamma"]


@pytest.fixture
def setup(tmp_path, database_url):
    ops = tmp_path / "ops.jsonl"
    rt = make_runtime(tmp_path, database_url, config_text(str(ops), SOURCES, WATCHLISTS), Clock())
    polling.dispatch_due(rt)  # the source table follows the config
    return rt, ops


def notices(rt, ops) -> list[dict]:
    for delivery_id in check_notices(rt):
        assert sending.deliver(rt, delivery_id)
    return [json.loads(x) for x in ops.read_text().splitlines()] if ops.exists() else []


def enabled_sources(rt) -> list[str]:
    with rt.store.session() as s:
        return sorted(s.scalars(select(m.Source.name).where(m.Source.enabled.is_(True))))


def test_an_emptied_config_is_refused_and_monitoring_goes_on(setup, caplog):
    rt, ops = setup
    version = rt.config.current().version
    for emptied in ("", "# all commented out\n", "channels: []\n"):
        rt.config.path.write_text(emptied)
        assert rt.config.current().version == version  # refused: the last good one stays
        assert "no sources: this config would watch nothing" in (rt.config.last_error or "")
        polling.dispatch_due(rt)
        assert enabled_sources(rt) == SOURCES
    assert "config change refused" in caplog.text
    (notice,) = [n for n in notices(rt, ops) if n["event"] == "config_rejected"]
    assert "no watchlists: this config would watch nothing" in notice["text"]


def test_a_reload_removing_most_sources_applies_with_one_notice(setup, caplog):
    rt, ops = setup
    caplog.set_level(logging.INFO, logger="worker.bootstrap.config_in_force")
    # half is not more than half: applied quietly
    rt.config.path.write_text(config_text(str(ops), SOURCES[:2], WATCHLISTS))
    assert [s.name for s in rt.config.current().loaded.config.sources] == SOURCES[:2]
    assert notices(rt, ops) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # 2 of the 2 left... and 2 of 3 watchlists: applied, with a warning and one notice
    rt.config.path.write_text(config_text(str(ops), ["e"], WATCHLISTS[:1]))
    active = rt.config.current()
    assert [s.name for s in active.loaded.config.sources] == ["e"]
    polling.dispatch_due(rt)
    assert enabled_sources(rt) == ["e"]  # applied
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.levelno == logging.WARNING
    said = "removes 2 of 2 sources (a, b) and 2 of 3 watchlists (beta, gamma)"
    assert said in warning.getMessage()
    for _ in range(3):  # once, however often checked
        (notice,) = notices(rt, ops)
    assert notice["event"] == "config_shrunk"
    assert said in notice["text"] and active.version in notice["text"]
    webhook_validator("notice").validate(notice)
    # a small edit afterwards: nothing more
    rt.config.path.write_text(config_text(str(ops), ["e", "f"], WATCHLISTS[:1]))
    assert len(rt.config.current().loaded.config.sources) == 2
    assert len(notices(rt, ops)) == 1


def test_disabling_most_sources_counts_as_removing_them(setup):
    rt, ops = setup
    text = config_text(str(ops), SOURCES, WATCHLISTS)
    for s in SOURCES[1:]:
        text = text.replace(
            f"every: 1m}}\n  - {{name: {s},", f"every: 1m}}\n  - {{enabled: false, name: {s},"
        )
    rt.config.path.write_text(text)
    assert rt.config.current().loaded.config.source("b").enabled is False
    (notice,) = notices(rt, ops)
    assert "removes 3 of 4 sources (b, c, d)" in notice["text"]
