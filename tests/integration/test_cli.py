"""The `newswatch` command as a user runs it: match, status, db upgrade."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helpers.pipeline import Clock, make_runtime, rss, run_all
from tests.helpers.processes import run_cli

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "tests" / "data" / "extract" / "seed-article.html"
FEED = REPO / "tests" / "data" / "feeds" / "rss20.xml"

CONFIG = """
watchlists:
  - name: pmf
    names: [{name: Popular Mobilization Forces, aliases: [PMF, "Hashd al-Sha'abi"]}]
  - name: ameri
    names: [{name: Hadi al-Ameri, aliases: [Hadi al-Amiri]}]
  - name: crisis
    keywords: [crisis]
  - name: troops
    keywords: [troops]
"""


def newswatch(
    *args: str, env: dict | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess:
    return run_cli(*args, env=env, input=stdin)


def test_match_a_page_prints_the_article_and_its_hits(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    run = newswatch("match", "--config", str(cfg), str(SEED))
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    (entry,) = out["articles"]
    article = entry["article"]
    assert article["title"] == "Iran-Backed Shiite Militias Demand U.S. Leave Iraq"
    assert article["authors"] == ["Ben Kew"]
    assert article["published"].startswith("2017-11-30")
    assert article["body"].startswith("A senior commander")
    assert "Two Misguided Reports" not in article["body"]
    watchlists = {m["watchlist"]: m for m in entry["matches"]}
    assert set(watchlists) == {"pmf", "ameri", "troops"}  # not "crisis": ISIS is not crisis
    hits = watchlists["pmf"]["hits"]
    body = article["body"]
    # offsets point into the original text, curly apostrophe and all
    assert any(
        body[h["start"] : h["end"]] == "Hashd al-Sha’abi" for h in hits if h["field"] == "body"
    )


def test_match_a_feed_from_stdin(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    run = newswatch("match", "--config", str(cfg), "-", stdin=FEED.read_bytes())
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert len(out["articles"]) == 2
    assert [m["watchlist"] for m in out["articles"][0]["matches"]] == ["troops"]


def test_match_reports_unreadable_input_as_an_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    run = newswatch("match", "--config", str(cfg), "-", stdin=b"")
    # one line on stderr naming the input and the extraction's complaint, and exit 1
    err = run.stderr.decode()
    assert run.returncode == 1 and run.stdout == b"" and err.count("\n") == 1, err
    assert err.startswith("newswatch: match: -: ") and "Traceback" not in err


def test_status_shows_sources_and_counts(tmp_path, http_server):
    http_server.add("/hook", b"", status=204)
    http_server.add("/feed.xml", rss(("Troops leave", http_server.url("/a"))))
    http_server.add(
        "/a",
        "<html><body><article><p>"
        + "The troops leave today. " * 20
        + "</p></article></body></html>",
        headers={"Content-Type": "text/html"},
    )
    config = f"""
sources:
  - name: wire
    feed: {http_server.url("/feed.xml")}
  - name: dead
    feed: {http_server.url("/missing.xml")}
watchlists:
  - name: troops
    keywords: [troops]
    notify: [hook]
channels:
  - name: hook
    webhook: {http_server.url("/hook")}
fetch:
  allow_networks: [127.0.0.0/8]
"""
    db = f"sqlite:///{tmp_path / 'nw.db'}"
    rt = make_runtime(tmp_path, db, config, Clock())
    assert len(run_all(rt)) == 1
    env = {"DATABASE_URL": db, "NEWSWATCH_CONFIG": str(tmp_path / "newswatch.yaml")}
    run = newswatch("status", "--json", env=env)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    sources = {s["name"]: s for s in report["sources"]}
    assert sources["wire"]["items_seen"] == 1 and sources["wire"]["last_error"] is None
    assert (
        sources["dead"]["last_error_kind"] == "http_404" and "404" in sources["dead"]["last_error"]
    )
    assert report["articles"] == {"done": 1}
    assert report["matches"] == {"alerted": 1}
    assert report["deliveries"]["sent"] == 1
    assert sum(report["deliveries"].values()) == 1
    text = newswatch("status", env=env).stdout.decode()
    assert "wire" in text and "ERROR (http_404)" in text and "sent 1" in text
    # the fetch time as a time (Clock starts 2026-01-01 12:00 UTC), not a format spec
    assert "last fetch 2026-01-01 12:00:00 UTC" in text and "<" not in text


def test_in_process_commands_leave_the_environment_untouched(tmp_path, monkeypatch, capsys):
    """`main` builds its settings from the environment and its flags, and writes nothing
    back: a later command (or test) in the same process sees the environment it had."""
    import os

    from worker import cli

    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG + "allow_empty: true\n")
    monkeypatch.delenv("NEWSWATCH_CONFIG", raising=False)
    before = dict(os.environ)
    assert cli.main(["check-config", "--config", str(cfg)]) == 0
    assert cli.main(["match", "--config", str(cfg), str(SEED)]) == 0
    assert cli.main(["check-config", "--config", str(tmp_path / "missing.yaml")]) == 1
    assert dict(os.environ) == before
    # an environment given to `main` is the one it reads, and it is not written either
    env = {"NEWSWATCH_CONFIG": str(cfg)}
    assert cli.main(["check-config"], env=env) == 0
    assert env == {"NEWSWATCH_CONFIG": str(cfg)}
    assert f"{cfg}: ok" in capsys.readouterr().out


def test_run_gives_its_workers_an_environment_of_their_own(tmp_path):
    """`run`'s children get the config it was given and the broker it started through the
    environment the supervisor builds for them, not through this process's."""
    from worker.service.supervisor import child_environment

    base = {"PATH": "/bin", "NEWSWATCH_CONFIG": "elsewhere.yaml"}
    env = child_environment(base, config=tmp_path / "c.yaml", broker_url="redis+socket:///s")
    assert env == {
        "PATH": "/bin",
        "NEWSWATCH_CONFIG": str(tmp_path / "c.yaml"),
        "NEWSWATCH_BROKER_URL": "redis+socket:///s",
    }
    assert base == {"PATH": "/bin", "NEWSWATCH_CONFIG": "elsewhere.yaml"}
    assert child_environment(base) == base
