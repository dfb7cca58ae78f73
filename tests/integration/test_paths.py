"""Where each command looks, when it is run from another folder than the service's:
paths said aloud, no empty database made by a read, file channels in the data folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.pipeline import Clock, make_runtime, rss, run_all
from tests.helpers.processes import run_cli

CONFIG = """
sources:
  - name: wire
    feed: {feed}
watchlists:
  - name: troops
    keywords: [troops]
    notify: [archive]
channels:
  - name: archive
    file: alerts.jsonl
fetch:
  allow_networks: [127.0.0.0/8]
"""


@pytest.mark.parametrize(
    "command", [["status"], ["status", "--json"], ["deliveries"], ["sources"], ["endpoints"]]
)
def test_a_read_command_in_a_folder_without_a_database_says_so_and_creates_nothing(
    tmp_path, command
):
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    run = run_cli(*command, cwd=elsewhere, text=True)  # no NEWSWATCH_* at all: the defaults
    assert run.returncode == 1
    assert f"no database at {elsewhere / 'data' / 'newswatch.db'}" in run.stderr
    assert f"relative to the current folder {elsewhere}" in run.stderr
    assert "NEWSWATCH_DATA_DIR" in run.stderr
    assert list(elsewhere.iterdir()) == []  # no data/, no newswatch.db


def test_rules_test_without_a_database_says_so(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(feed="http://127.0.0.1:9/feed.xml"))
    data = tmp_path / "data"
    env = {"NEWSWATCH_DATA_DIR": str(data), "NEWSWATCH_CONFIG": str(config)}
    run = run_cli("rules", "test", env=env, cwd=tmp_path, text=True)
    assert run.returncode == 1
    assert f"no database at {data / 'newswatch.db'}" in run.stderr
    assert not data.exists()


def test_run_in_a_folder_without_a_config_names_the_path_it_tried(tmp_path):
    run = run_cli("run", cwd=tmp_path, text=True, timeout=60)
    assert run.returncode == 1
    assert str(tmp_path / "config" / "newswatch.yaml") in run.stderr
    assert f"relative to the current folder {tmp_path}" in run.stderr
    assert "NEWSWATCH_CONFIG" in run.stderr
    assert list(tmp_path.iterdir()) == []  # not even a data folder


def test_status_names_its_config_database_and_data_folder(tmp_path, http_server):
    http_server.add("/feed.xml", rss(("Troops leave", http_server.url("/a"))))
    data = tmp_path / "data"
    db = f"sqlite:///{data / 'newswatch.db'}"
    data.mkdir()
    make_runtime(tmp_path, db, CONFIG.format(feed=http_server.url("/feed.xml")), Clock())
    env = {"NEWSWATCH_DATA_DIR": str(data), "NEWSWATCH_CONFIG": str(tmp_path / "newswatch.yaml")}
    text = run_cli("status", env=env, cwd=tmp_path, text=True)
    assert text.returncode == 0, text.stderr
    first = text.stdout.splitlines()[0]
    assert first == (f"config {tmp_path / 'newswatch.yaml'}, database {db}, data folder {data}")
    report = json.loads(run_cli("status", "--json", env=env, cwd=tmp_path, text=True).stdout)
    assert report["paths"] == {
        "config": str(tmp_path / "newswatch.yaml"),
        "database": db,
        "data_folder": str(data),
    }
    # the defaults, from the folder that holds them: said to be the defaults
    text = run_cli("status", cwd=tmp_path, text=True)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0].endswith(
        f"(config and data folder: the default, relative to the current folder {tmp_path})"
    )


def test_a_file_channel_path_is_in_the_data_folder_not_the_current_one(
    tmp_path, http_server, monkeypatch
):
    http_server.add("/feed.xml", rss(("Troops leave", http_server.url("/a"))))
    http_server.add(
        "/a",
        "<html><body><article><p>" + "The troops leave today. " * 20 + "</p></article>"
        "</body></html>",
        headers={"Content-Type": "text/html"},
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a worker started from another folder
    rt = make_runtime(
        tmp_path,
        f"sqlite:///{tmp_path / 'nw.db'}",
        CONFIG.format(feed=http_server.url("/feed.xml")),
        Clock(),
    )
    assert len(run_all(rt)) == 1
    (line,) = (tmp_path / "data" / "alerts.jsonl").read_text().splitlines()
    assert json.loads(line)["watchlist"] == "troops"
    assert list(elsewhere.iterdir()) == []


def test_the_shipped_config_writes_alerts_into_the_data_folder(monkeypatch):
    from worker.config import load_config

    monkeypatch.setenv("NEWSWATCH_SMTP_PASSWORD", "x")  # example.yaml needs it
    repo = Path(__file__).resolve().parents[2]
    for name in ("newswatch.yaml", "example.yaml"):
        for channel in load_config(repo / "config" / name).config.channels:
            if channel.file:
                assert not Path(channel.file).is_absolute()
                assert not channel.file.startswith("data/")  # would be data/data/
