"""The CLI tells the truth (issue 13): what `status` and `deliveries` show, errors that
exit non-zero and name the choices, output cut short by `head`, global options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers.pipeline import rss
from tests.helpers.processes import REPO, _clean_environ, run_cli

WATCH = "watchlists:\n  - name: troops\n    keywords: [troops]\nallow_empty: true\n"


def _piped_into_head(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`newswatch ARGS | head -1`: the first line read, then the reader gone."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**_clean_environ(), **(env or {})},
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline().decode()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=120), first, err


def test_match_piped_into_head_ends_quietly(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(WATCH)
    # far more output than a pipe holds: the writer is still writing when head leaves
    feed = tmp_path / "big.xml"
    feed.write_text(
        rss(*((f"Troops move {i} " + "x" * 200, f"http://127.0.0.1/{i}") for i in range(600)))
    )
    code, first, err = _piped_into_head(["match", "--config", str(cfg), str(feed)])
    assert first.startswith("{")
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert code == 141  # 128 + SIGPIPE, as a shell reports `yes | head`


def test_version_and_a_real_description():
    run = run_cli("--version", text=True)
    assert run.returncode == 0
    assert run.stdout.startswith("newswatch ") and run.stdout.strip() != "newswatch"
    help_text = run_cli("--help", text=True).stdout
    assert "watchlists" in help_text and "alerts" in help_text
    assert "The `newswatch` command." not in help_text


def test_global_options_before_the_command(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(WATCH)
    before = run_cli("--config", str(cfg), "check-config", text=True)
    after = run_cli("check-config", "--config", str(cfg), text=True)
    assert before.returncode == after.returncode == 0, before.stderr
    assert before.stdout == after.stdout and str(cfg) in before.stdout
    # the one after the command wins over the one before it
    other = tmp_path / "missing.yaml"
    run = run_cli("--config", str(cfg), "check-config", "--config", str(other), text=True)
    assert run.returncode == 1 and str(other) in run.stdout + run.stderr


def test_deliveries_state_must_be_a_state(tmp_path: Path):
    env = {"NEWSWATCH_DATA_DIR": str(tmp_path)}
    run = run_cli("deliveries", "--state", "bogus", env=env, text=True)
    assert run.returncode != 0
    assert "bogus" in run.stderr
    for state in ("pending", "batched", "failed", "sent", "dead"):
        assert state in run.stderr


def _sources_config(server, *, with_old: bool) -> str:
    old = f"  - name: old\n    feed: {server.url('/feed.xml')}\n" if with_old else ""
    return f"""
sources:
  - name: wire
    feed: {server.url("/feed.xml")}
  - name: broken
    feed: {server.url("/missing.xml")}
  - name: gone
    feed: {server.url("/gone.xml")}
    disable_after: 1
  - name: paused
    feed: {server.url("/feed.xml")}
    enabled: false
{old}watchlists:
  - name: troops
    keywords: [troops]
fetch:
  allow_networks: [127.0.0.0/8]
"""


def test_status_shows_fetch_times_and_why_a_source_is_off(tmp_path, http_server):
    from tests.helpers.pipeline import Clock, make_runtime, run_all

    http_server.add("/feed.xml", rss(("Quiet day", http_server.url("/a"))))
    http_server.add("/a", "<html><body><p>nothing</p></body></html>")
    http_server.add("/gone.xml", b"", status=410)
    db = f"sqlite:///{tmp_path / 'nw.db'}"
    clock = Clock()
    rt = make_runtime(tmp_path, db, _sources_config(http_server, with_old=True), clock)
    run_all(rt)
    # `old` leaves the config; the next pass follows it
    (tmp_path / "newswatch.yaml").write_text(_sources_config(http_server, with_old=False))
    clock.advance(3600)
    run_all(rt)
    env = {"DATABASE_URL": db, "NEWSWATCH_CONFIG": str(tmp_path / "newswatch.yaml")}
    run = run_cli("status", env=env, text=True)
    assert run.returncode == 0, run.stderr
    rows = {line.split()[0]: line for line in run.stdout.splitlines() if line.startswith("  ")}
    # a time, not a format spec, and when it is polled next
    assert "last fetch 2026-01-01 13:00:00 UTC" in rows["wire"]
    assert "next poll 2026-01-01 1" in rows["wire"]
    assert "<" not in rows["wire"]
    assert rows["broken"].endswith("ERROR (http_404): " + http_server.url("") + ": HTTP 404")
    # three kinds of "off", each with its reason, none polled; a long reason is cut to a
    # row's width, and says so (`--json` and `newswatch sources` give it whole)
    assert "DISABLED after errors: disabled at 2026-01-01T12:00:00+00:00" in rows["gone"]
    assert rows["gone"].endswith("…") and "HTTP 410" not in rows["gone"]
    assert len(rows["gone"].split("failures 1   ")[1]) == 120
    assert "removed from config" in rows["old"]
    assert "disabled in config (enabled: false)" in rows["paused"]
    for name in ("gone", "old", "paused"):
        assert "next poll -" in rows[name]
    report = __import__("json").loads(run_cli("status", "--json", env=env, text=True).stdout)
    states = {s["name"]: s["state"] for s in report["sources"]}
    assert states == {
        "wire": "ok",
        "broken": "error",
        "gone": "disabled_after_errors",
        "old": "removed_from_config",
        "paused": "disabled_in_config",
    }
    assert "410" in {s["name"]: s for s in report["sources"]}["gone"]["disabled_reason"]


def _failed_deliveries(tmp_path, http_server):
    """A store with two deliveries whose webhook answered 500 (failed, retry due later)."""
    from tests.helpers.pipeline import Clock, make_runtime, run_all

    http_server.add("/hook", b"down", status=500)
    http_server.add(
        "/feed.xml",
        rss(("Troops leave", http_server.url("/a")), ("Troops arrive", http_server.url("/b"))),
    )
    for path in ("/a", "/b"):
        http_server.add(
            path,
            "<html><body><article><p>" + "The troops move today. " * 20 + "</p></article>",
            headers={"Content-Type": "text/html"},
        )
    config = f"""
sources:
  - name: wire
    feed: {http_server.url("/feed.xml")}
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
    assert run_all(rt) == []
    env = {"DATABASE_URL": db, "NEWSWATCH_CONFIG": str(tmp_path / "newswatch.yaml")}
    return rt, env


def test_deliveries_show_when_made_last_tried_and_next_due(tmp_path, http_server):
    import json

    _rt, env = _failed_deliveries(tmp_path, http_server)
    run = run_cli("deliveries", env=env, text=True)
    assert run.returncode == 0, run.stderr
    times = [line for line in run.stdout.splitlines() if line.startswith("    created ")]
    assert len(times) == 2
    for line in times:
        # Clock: 2026-01-01 12:00 UTC; the retry falls due some seconds later
        assert line.startswith("    created 2026-01-01 12:00:00 UTC, last attempt 2026-01-01 12")
        assert ", next attempt 2026-01-01 12:" in line
    (row, *_) = json.loads(run_cli("deliveries", "--json", env=env, text=True).stdout)
    assert row["state"] == "failed"
    assert row["created_at"] and row["last_attempt_at"] and row["next_attempt_at"]


def test_deliveries_retry_takes_a_unique_prefix(tmp_path, http_server):
    from datetime import UTC, datetime

    from sqlalchemy import select

    from worker.core.states import DeliveryKind, DeliveryRoute, DeliveryState
    from worker.store import deliveries
    from worker.store import models as m

    rt, env = _failed_deliveries(tmp_path, http_server)
    with rt.store.session() as session:
        first, second = sorted(session.scalars(select(m.Delivery)), key=lambda d: d.id)
        first_id, second_id, match_id = first.id, second.id, first.match_id
        # a dead delivery whose id shares its first 8 characters with `first`
        twin = deliveries.new_delivery(
            match_id=match_id,
            channel="elsewhere",  # one delivery per (match, channel)
            watchlist="troops",
            kind=DeliveryKind.ALERT,
            route=DeliveryRoute.IMMEDIATE,
            now=datetime(2026, 1, 1, tzinfo=UTC),
        )
        twin.id, twin.state = first_id[:8] + "-ffff-4fff-8fff-ffffffffffff", DeliveryState.DEAD
        if twin.id == first_id:
            twin.id = first_id[:8] + "-eeee-4eee-8eee-eeeeeeeeeeee"
        session.add(twin)
    ambiguous = run_cli("deliveries", "retry", first_id[:8], env=env, text=True)
    assert ambiguous.returncode == 1
    assert "ambiguous" in ambiguous.stderr
    assert first_id in ambiguous.stderr and twin.id in ambiguous.stderr
    unknown = run_cli("deliveries", "retry", "zz", env=env, text=True)
    assert unknown.returncode == 1 and "'zz'" in unknown.stderr
    # a unique prefix of the other one is enough
    prefix = next(
        second_id[:n]
        for n in range(1, 37)
        if not first_id.startswith(second_id[:n]) and not twin.id.startswith(second_id[:n])
    )
    run = run_cli("deliveries", "retry", prefix, env=env, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"delivery {second_id}: failed -> queued again"
    # the whole id, as before, and what is not dead or failed says so, non-zero
    again = run_cli("deliveries", "retry", second_id, env=env, text=True)
    assert again.returncode == 1 and "not dead or failed" in again.stderr


def test_sources_enable_a_typo_names_the_known_sources(tmp_path, http_server):
    _rt, env = _failed_deliveries(tmp_path, http_server)
    run = run_cli("sources", "enable", "wier", env=env, text=True)
    assert run.returncode == 1
    assert "'wier'" in run.stderr and "known: wire" in run.stderr
    # a known source that newswatch did not disable: nothing to do, and no error
    ok = run_cli("sources", "enable", "wire", env=env, text=True)
    assert ok.returncode == 0 and "not disabled" in ok.stdout


PIPE_BUFFER = 64 * 1024  # Linux's default pipe capacity: more output than this blocks


def test_status_matches_and_match_source_piped_into_head_end_quietly(tmp_path, http_server):
    """`status | head -1`, `matches | head -1`, `match --source | head -1`: each with far
    more output than a pipe holds, so the writer is still writing when head leaves."""
    from tests.helpers.pipeline import Clock, make_runtime
    from worker.articles import parsing
    from worker.matching import applying
    from worker.sources import polling
    from worker.store import models as m

    items = [(f"Troops move north, report {i} " + "y" * 400, f"/n/{i}") for i in range(260)]
    http_server.add("/wire.xml", rss(*((t, http_server.url(p)) for t, p in items)))
    # many configured sources, never fetched (only synced): rows for `status`
    many = "".join(
        f"  - name: quiet-source-{i:04d}-{'z' * 60}\n    feed: http://127.0.0.1:9/{i}.xml\n"
        for i in range(900)
    )
    config = (
        f"sources:\n  - name: wire\n    feed: {http_server.url('/wire.xml')}\n{many}"
        "watchlists:\n  - name: troops\n    keywords: [troops]\n"
        "fetch:\n  allow_networks: [127.0.0.0/8]\n"
    )
    db = f"sqlite:///{tmp_path / 'nw.db'}"
    clock = Clock()
    rt = make_runtime(tmp_path, db, config, clock)
    polling.dispatch_due(rt)  # syncs every source; only `wire` is fetched
    with rt.store.session() as session:
        wire_id = session.query(m.Source.id).filter(m.Source.name == "wire").scalar()
    for item_id in polling.fetch_source(rt, wire_id):
        article_id = parsing.parse_item(rt, item_id)
        if article_id is not None:
            applying.apply_rules(rt, article_id)
    rt.store.dispose()
    env = {"DATABASE_URL": db, "NEWSWATCH_CONFIG": str(tmp_path / "newswatch.yaml")}
    for args in (
        ["status"],
        ["matches", "--since", "3650d", "--limit", "1000"],
        ["match", "--source", "wire"],
    ):
        whole = run_cli(*args, env=env)
        assert whole.returncode == 0, whole.stderr
        assert len(whole.stdout) > 2 * PIPE_BUFFER, (args, len(whole.stdout))
        code, first, err = _piped_into_head(args, env)
        assert first.strip(), args
        assert "Traceback" not in err and "BrokenPipe" not in err, (args, err)
        assert code == 141, (args, code, err)


def test_status_cuts_a_long_error_to_a_row(tmp_path, http_server):
    """An error row ran past 300 characters: a long error (as a TLS or parser failure
    gives) is cut to the row's width with an ellipsis; `--json` keeps it whole."""
    from tests.helpers.pipeline import Clock, make_runtime, run_all
    from worker.store import models as m

    long_path = "/feeds/rss.xml"
    db = f"sqlite:///{tmp_path / 'nw.db'}"
    config = (
        f"sources:\n  - name: long\n    feed: {http_server.url(long_path)}\n"
        "watchlists:\n  - name: troops\n    keywords: [troops]\n"
        "fetch:\n  allow_networks: [127.0.0.0/8]\n"
    )
    rt = make_runtime(tmp_path, db, config, Clock())
    run_all(rt)  # a real failure first: the row's error kind and count
    long_error = "certificate verify failed: " + "unable to get local issuer certificate; " * 9
    with rt.store.session() as session:
        session.execute(m.Source.__table__.update().values(last_error=long_error))
    rt.store.dispose()
    env = {"DATABASE_URL": db, "NEWSWATCH_CONFIG": str(tmp_path / "newswatch.yaml")}
    run = run_cli("status", env=env, text=True)
    assert run.returncode == 0, run.stderr
    (row,) = [line for line in run.stdout.splitlines() if line.startswith("  long ")]
    detail = row.split("failures 1   ")[1]
    assert detail.startswith("ERROR (http_404): ") and detail.endswith("…")
    assert len(detail) == 120 and len(row) < 300
    report = json.loads(run_cli("status", "--json", env=env, text=True).stdout)
    (source,) = report["sources"]
    assert source["last_error"] == long_error and len(long_error) > 300
