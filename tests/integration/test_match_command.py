"""`newswatch match`, `match --source`, `rules test` and `matches` as a user runs them:
real HTTP servers on 127.0.0.1, a real database filled by the real pipeline steps, each
command a child process (exit code, stdout and stderr as the user sees them)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import timedelta

from tests.helpers.pipeline import Clock, count, make_runtime, rss, run_all
from tests.helpers.processes import REPO, _clean_environ, run_cli
from tests.helpers.webhook_receiver import closed_port
from worker.bootstrap.config_in_force import compile_config
from worker.matching.dry_run import replay
from worker.store import models as m

WATCHLISTS = """
watchlists:
  - name: ceasefire
    keywords: [ceasefire]
    notify: [archive]
  - name: pmf
    names: [{name: Popular Mobilization Forces, aliases: [PMF]}]
    notify: [archive]
channels:
  - name: archive
    file: {alerts}
"""

ALLOW = """
fetch:
  allow_networks: [127.0.0.0/8]
"""

PAGE = (
    "<html><head><title>Talks resume</title></head><body><article><h1>Talks resume</h1><p>"
    + "Negotiators met again in Doha on Tuesday and agreed a ceasefire for the north. " * 8
    + "</p></article></body></html>"
)


def _cfg(tmp_path, sources: str = "", allow: bool = True):
    path = tmp_path / "c.yaml"
    text = (sources and f"sources:\n{sources}") + WATCHLISTS.replace(
        "{alerts}", str(tmp_path / "a.jsonl")
    )
    path.write_text(text + (ALLOW if allow else ""))
    return path


def _env(tmp_path) -> dict[str, str]:
    return {"NEWSWATCH_DATA_DIR": str(tmp_path / "data")}


def _one_line_error(run: subprocess.CompletedProcess, *needles: str) -> str:
    err = run.stderr.decode()
    assert run.returncode == 1, (run.returncode, err)
    assert run.stdout == b""
    assert err.count("\n") == 1 and err.startswith("newswatch: match: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


# --- finding 1: an input that cannot be read is one line on stderr and exit 1 ---------


def test_match_a_404_is_one_line_and_exit_1(tmp_path, http_server):
    url = http_server.url("/gone.html")
    run = run_cli("match", "--config", str(_cfg(tmp_path)), url, env=_env(tmp_path))
    _one_line_error(run, url, "404")


def test_match_a_refused_connection_is_one_line_and_exit_1(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/a"
    run = run_cli("match", "--config", str(_cfg(tmp_path)), url, env=_env(tmp_path))
    _one_line_error(run, url)


def test_match_a_blocked_address_is_one_line_and_exit_1(tmp_path, http_server):
    http_server.add("/a.html", PAGE, headers={"Content-Type": "text/html"})
    url = http_server.url("/a.html")
    cfg = _cfg(tmp_path, allow=False)  # 127.0.0.1 is not in allow_networks
    run = run_cli("match", "--config", str(cfg), url, env=_env(tmp_path))
    _one_line_error(run, url)
    assert http_server.hits("/a.html") == 0


def test_match_a_missing_file_is_one_line_and_exit_1(tmp_path):
    missing = tmp_path / "nope.html"
    run = run_cli("match", "--config", str(_cfg(tmp_path)), str(missing), env=_env(tmp_path))
    _one_line_error(run, str(missing), "no such file")


# --- finding 2: a configured source's feed goes the service's way (full_text) ----------


def _full_text_feed(http_server) -> str:
    http_server.add("/talks", PAGE, headers={"Content-Type": "text/html"})
    feed = rss(("Talks resume", http_server.url("/talks")))  # the feed says no "ceasefire"
    http_server.add("/feed.xml", feed, headers={"Content-Type": "application/rss+xml"})
    return http_server.url("/feed.xml")


def test_match_a_configured_full_text_feed_matches_as_the_service_does(
    tmp_path, http_server, sqlite_url
):
    feed = _full_text_feed(http_server)
    cfg = _cfg(tmp_path, f"  - name: wire\n    feed: {feed}\n    full_text: true\n")
    # the service alerts on the page's text
    rt = make_runtime(tmp_path, sqlite_url, cfg.read_text(), Clock())
    run_all(rt)
    assert count(rt, m.Match, m.Match.watchlist == "ceasefire") == 1
    rt.store.dispose()
    # and so does `match FEED_URL`: the configured source's full_text is followed
    run = run_cli("match", "--config", str(cfg), feed, env=_env(tmp_path))
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["source"]["name"] == "wire" and out["source"]["full_text"] is True
    (entry,) = out["articles"]
    assert [w["watchlist"] for w in entry["matches"]] == ["ceasefire"]
    assert "Doha" in entry["article"]["body"]


# --- finding 3: match --source NAME, nothing stored or sent ----------------------------

LISTING = """<html><body><nav><a href="/about">About</a></nav>
<ul><li><a href="/news/talks">Talks resume</a></li><li><a href="/news/rain">Rain</a></li>
<li><a href="/video/1">Video</a></li></ul></body></html>"""


def test_match_source_shows_what_follow_picks_and_what_would_match(tmp_path, http_server):
    http_server.add("/list", LISTING, headers={"Content-Type": "text/html"})
    http_server.add("/news/talks", PAGE, headers={"Content-Type": "text/html"})
    rain = PAGE.replace("ceasefire", "downpour").replace("Talks resume", "Rain")
    http_server.add("/news/rain", rain, headers={"Content-Type": "text/html"})
    listing = http_server.url("/list")
    cfg = _cfg(tmp_path, f"  - name: site\n    page: {listing}\n    follow: '/news/'\n")
    run = run_cli("match", "--config", str(cfg), "--source", "site", env=_env(tmp_path))
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["source"]["links"] == [http_server.url("/news/talks"), http_server.url("/news/rain")]
    assert http_server.hits("/about") == 0 and http_server.hits("/video/1") == 0
    by_url = {a["url"]: a for a in out["articles"]}
    assert [w["watchlist"] for w in by_url[http_server.url("/news/talks")]["matches"]] == [
        "ceasefire"
    ]
    assert by_url[http_server.url("/news/rain")]["matches"] == []
    assert "story" in out["not_known"] and "database" in out["not_known"]
    # nothing stored (no database made), nothing sent
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())
    assert not (tmp_path / "a.jsonl").exists()


def _story_page(title: str, tail: str) -> str:
    return (
        f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
        f"<p>{STORY}</p><p>{tail}</p></article></body></html>"
    )


def _story_listing(tmp_path, http_server):
    """A listing whose `follow:` picks two copies of one story and a page about rain."""
    links = "".join(f'<li><a href="/news/{p}">{p}</a></li>' for p in ("pmf1", "pmf2", "rain"))
    listing = f'<html><body><a href="/about">About</a><ul>{links}</ul></body></html>'
    http_server.add("/list", listing, headers={"Content-Type": "text/html"})
    for path, tail in (("pmf1", "Reuters reported it first."), ("pmf2", "AFP reported it.")):
        page = _story_page("PMF moves north", tail)
        http_server.add(f"/news/{path}", page, headers={"Content-Type": "text/html"})
    rain = PAGE.replace("ceasefire", "downpour").replace("Talks resume", "Rain")
    http_server.add("/news/rain", rain, headers={"Content-Type": "text/html"})
    return _cfg(
        tmp_path, f"  - name: site\n    page: {http_server.url('/list')}\n    follow: /news/\n"
    )


def test_match_source_text_view_shows_links_alerts_and_duplicates(tmp_path, http_server):
    cfg = _story_listing(tmp_path, http_server)
    args = ("match", "--config", str(cfg), "--source", "site")
    run = run_cli(*args, "--text", env=_env(tmp_path))
    assert run.returncode == 0, run.stderr
    text = run.stdout.decode()
    first, second = http_server.url("/news/pmf1"), http_server.url("/news/pmf2")
    assert "follow: '/news/' picks 3 link(s):" in text
    assert f"  {first}\n  {second}\n  {http_server.url('/news/rain')}\n" in text
    assert "/about" not in text
    assert text.count("pmf: would alert") == 1
    assert f"pmf: matches, would NOT alert (same story as {first})" in text
    assert "3. Rain" in text and "no watchlist matches" in text
    assert "Nothing was stored or sent." in text
    assert not (tmp_path / "a.jsonl").exists()
    # --json (and a pipe, by default) keeps the JSON, with the same decisions
    for extra in (("--json",), ()):
        out = json.loads(run_cli(*args, *extra, env=_env(tmp_path)).stdout)
        by_url = {a["url"]: a for a in out["articles"]}
        assert by_url[first]["alerts"] == ["pmf"] and by_url[first]["duplicate_of"] == {}
        assert by_url[second]["alerts"] == [] and by_url[second]["duplicate_of"] == {"pmf": first}
    both = run_cli(*args, "--json", "--text", env=_env(tmp_path))
    assert both.returncode == 2 and b"not allowed with" in both.stderr


def test_match_on_a_terminal_prints_text(tmp_path, http_server):
    cfg = _story_listing(tmp_path, http_server)
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "match", "--config", str(cfg), "--source", "site"],
            stdout=secondary,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
            env={**_clean_environ(), **_env(tmp_path)},
        )
        os.close(secondary)  # the child holds the only writer: EOF (EIO) when it exits
        text = _read_all(primary)  # read while it writes: a full terminal would block it
        code = proc.wait(timeout=120)
    finally:
        os.close(primary)
    assert code == 0, text
    assert text.startswith("source site (page, full text fetched)"), text[:200]
    assert "pmf: would alert" in text


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the writer's side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_match_source_unknown_or_failing_is_one_line(tmp_path, http_server):
    cfg = _cfg(tmp_path, f"  - name: dead\n    feed: {http_server.url('/missing.xml')}\n")
    run = run_cli("match", "--config", str(cfg), "--source", "nope", env=_env(tmp_path))
    _one_line_error(run, "'nope'", "dead")
    run = run_cli("match", "--config", str(cfg), "--source", "dead", env=_env(tmp_path))
    _one_line_error(run, "source dead", "404")


# --- finding 4: explain any named watchlist --------------------------------------------


def test_explain_a_named_watchlist_that_found_nothing(tmp_path, http_server):
    page = tmp_path / "p.html"
    page.write_text(PAGE)
    cfg = str(_cfg(tmp_path))
    run = run_cli("match", "--config", cfg, "--explain", str(page), env=_env(tmp_path))
    (entry,) = json.loads(run.stdout)["articles"]
    assert [e["watchlist"] for e in entry["explain"]] == ["ceasefire"]  # pmf: no term found
    run = run_cli(
        "match", "--config", cfg, "--explain", "--watchlist", "pmf", str(page), env=_env(tmp_path)
    )
    assert run.returncode == 0, run.stderr
    (entry,) = json.loads(run.stdout)["articles"]
    (pmf,) = entry["explain"]
    assert pmf["watchlist"] == "pmf" and pmf["matched"] is False
    assert pmf["reasons"] and "no name or keyword found" in pmf["reasons"][0]
    run = run_cli("match", "--config", cfg, "--all-watchlists", str(page), env=_env(tmp_path))
    (entry,) = json.loads(run.stdout)["articles"]
    assert [e["watchlist"] for e in entry["explain"]] == ["ceasefire", "pmf"]
    run = run_cli("match", "--config", cfg, "--watchlist", "pfm", str(page), env=_env(tmp_path))
    err = run.stderr.decode()
    assert run.returncode == 2 and "'pfm'" in err and "ceasefire, pmf" in err


# --- finding 5: rules test counts a same-story copy apart ------------------------------

STORY = (
    "The Popular Mobilization Forces moved two brigades north of Mosul on Monday, officials "
    "said, in a deployment that local leaders described as temporary and tied to the "
    "security of the coming provincial elections, which have been delayed twice already. "
    "Residents reported convoys on the main road through the night and checkpoints at the "
    "entrances of three districts, while the provincial council met in emergency session. "
)


COPIES = ("Reuters reported it first.", "AFP reported it as well.")


def _story_feed(http_server, copies: tuple[str, ...] = COPIES) -> str:
    items = "".join(
        f"<item><title>PMF moves north</title><link>{http_server.url(f'/s/{i}')}</link>"
        f"<guid>s{i}</guid><description>{STORY}{tail}</description></item>"
        for i, tail in enumerate(copies)
    )
    body = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>'
    )
    http_server.add("/story.xml", body, headers={"Content-Type": "application/rss+xml"})
    return http_server.url("/story.xml")


def test_rules_test_counts_only_the_first_of_a_story(tmp_path, http_server, database_url):
    feed = _story_feed(http_server)
    cfg = _cfg(tmp_path, f"  - name: wire\n    feed: {feed}\n")
    clock = Clock()
    rt = make_runtime(tmp_path, database_url, cfg.read_text(), clock)
    run_all(rt)
    with rt.store.session() as s:
        stories = [a.story_id for a in s.query(m.Article).order_by(m.Article.id)]
    assert len(stories) == 2 and stories[0] == stories[1]  # one story, two copies
    # the service alerted once: the second copy is a duplicate match
    assert count(rt, m.Match, m.Match.state == "alerted") == 1
    report = replay(rt.store, compile_config(cfg).matcher, clock.now - timedelta(days=1))
    rt.store.dispose()
    first, second = report.articles
    assert (first.alerts, second.alerts) == (("pmf",), ())
    assert second.duplicate_of == {"pmf": first.article_id}
    assert report.to_json()["would_alert"] == 1
    assert "1 would alert, 1 same-story duplicate(s)" in report.to_text()


def test_rules_test_a_copy_of_a_story_that_alerted_before_the_window_is_a_duplicate(
    tmp_path, http_server, database_url
):
    feed = _story_feed(http_server, COPIES[:1])
    cfg = _cfg(tmp_path, f"  - name: wire\n    feed: {feed}\n")
    clock = Clock()
    rt = make_runtime(tmp_path, database_url, cfg.read_text(), clock)
    run_all(rt)  # the first copy, stored and alerted at noon
    clock.advance(3 * 3600)
    _story_feed(http_server)
    run_all(rt)  # the second copy, three hours later: a duplicate in the service
    with rt.store.session() as s:
        rows = s.query(m.Article).order_by(m.Article.id).all()
        (first_id, second_id), stories = [a.id for a in rows], {a.story_id for a in rows}
    assert len(stories) == 1
    assert count(rt, m.Match, m.Match.state == "alerted") == 1
    # a window that starts between the two copies holds only the second
    report = replay(rt.store, compile_config(cfg).matcher, clock.now - timedelta(hours=1))
    rt.store.dispose()
    assert report.articles_seen == 1
    (second,) = report.articles
    assert second.article_id == second_id
    assert second.alerts == () and second.duplicate_of == {"pmf": first_id}
    assert report.would_alert == 0 and report.duplicates == 1


# --- finding 6: newswatch matches ------------------------------------------------------


def test_matches_lists_what_matched_newest_first(tmp_path, http_server, database_url):
    feed = _full_text_feed(http_server)
    story = _story_feed(http_server)
    sources = (
        f"  - name: wire\n    feed: {feed}\n    full_text: true\n"
        f"  - name: agency\n    feed: {story}\n"
    )
    cfg = _cfg(tmp_path, sources)
    rt = make_runtime(tmp_path, database_url, cfg.read_text(), Clock())
    run_all(rt)
    rt.store.dispose()
    env = {**_env(tmp_path), "DATABASE_URL": database_url, "NEWSWATCH_CONFIG": str(cfg)}
    # the pipeline's clock is 2026-01-01: a window reaching back to it
    run = run_cli("matches", "--since", "3650d", "--json", env=env)
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert len(rows) == 3
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    cease = next(r for r in rows if r["watchlist"] == "ceasefire")
    assert cease["source"] == "wire" and cease["title"] == "Talks resume"
    assert cease["url"] == http_server.url("/talks") and "ceasefire" in cease["snippet"]
    assert cease["highlights"]
    run = run_cli("matches", "--since", "3650d", "--watchlist", "pmf", env=env)
    text = run.stdout.decode()
    assert run.returncode == 0, run.stderr
    assert text.startswith("2 match(es) for watchlist pmf")
    assert "**Popular Mobilization Forces**" in text and "(agency)" in text
    assert "same story as an earlier alert" in text
    assert "ceasefire" not in text
    run = run_cli("matches", "--since", "1m", "--json", env=env)  # nothing that recent
    assert json.loads(run.stdout) == []
    run = run_cli("matches", "--since", "soon", env=env)
    assert run.returncode == 2 and run.stderr.decode().count("\n") == 1
