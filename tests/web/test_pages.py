"""Each dashboard page over real HTTP on 127.0.0.1, against a database filled by the
real pipeline (conftest.py): what it shows, and that it loads nothing from elsewhere."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from html import unescape

import pytest
from sqlalchemy import select

from tests.web.conftest import fill, serve
from worker.store import dashboard as queries
from worker.store import models as m
from worker.store import panels as queries_panels
from worker.web.serve import make

PAGES = [
    "/alerts",
    "/sources",
    "/deliveries",
    "/config",
    "/watchlists",
    "/watchlists/pmf",
    "/watchlists/rates",
]


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def text_of(html: str) -> str:
    """What a reader sees: no tags, no script's data."""
    html = re.sub(r"<script\b.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_alerts_page_shows_matches_with_highlights_sources_links_and_channel_states(dashboard):
    status, headers, html = get(dashboard + "/alerts")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    text = text_of(html)
    assert "Militia leaders meet in Baghdad" in text and "UN chief calls for ceasefire" in text
    assert "Markets steady" not in text  # matched nothing
    # the snippet's stored highlights, marked
    assert "<mark>Popular Mobilization Forces</mark>" in html
    assert "<mark>Antonio Guterres</mark>" in html
    assert "wire" in text and "2026-01-01 12:00:00 UTC" in text
    assert re.search(r'href="http://127\.0\.0\.1:\d+/a/pmf-talks"', html)
    # delivery state per channel: sent, failed with its next attempt, dead
    assert "hook: sent" in text
    assert re.search(r"flaky: failed \(next attempt 2026-01-01 12:\d\d:\d\d UTC\)", text)
    assert "broken: dead" in text


def test_alerts_filters_by_watchlist_source_and_since(dashboard):
    _, _, html = get(dashboard + "/alerts?watchlist=guterres")
    assert "UN chief" in html and "Militia leaders" not in html
    _, _, html = get(dashboard + "/alerts?source=gone-feed")
    assert "No matches for these filters" in html
    # the clock is the pipeline's: matches were made at 12:00, an hour ago is 11:01
    _, _, html = get(dashboard + "/alerts?since=1h")
    assert "UN chief" in html and "Militia leaders" in html
    _, _, html = get(dashboard + "/alerts?since=2026-01-02")
    assert "No matches for these filters" in html
    status, _, html = get(dashboard + "/alerts?since=yesterday-ish")
    assert status == 200 and "is neither a span" in html


def test_sources_page_shows_fetch_times_next_poll_and_the_last_error_with_its_kind(dashboard):
    status, _, html = get(dashboard + "/sources")
    assert status == 200
    text = text_of(html)
    gone, wire = text[text.index("gone-feed") : text.index("wire")], text[text.index("wire") :]
    # the last error with its kind, and how many in a row
    assert "http_404 (1 in a row)" in gone and "HTTP 404" in gone
    assert "2026-01-01 12:10:00 UTC" in gone  # next poll: every 10 min
    assert "10 min" in gone
    # last fetch, last success, next poll (every 5 min); four items seen, all today
    assert "5 min 2026-01-01 12:00:00 UTC 2026-01-01 12:00:00 UTC 2026-01-01 12:05:00 UTC 4" in wire


def test_deliveries_page_shows_pending_failed_with_next_attempt_and_dead_with_reason(dashboard):
    status, _, html = get(dashboard + "/deliveries")
    assert status == 200
    failed = html[html.index('id="deliveries-failed"') : html.index('id="deliveries-dead"')]
    dead = html[html.index('id="deliveries-dead"') :]
    assert "flaky" in failed and "HTTP 500" in failed and "Militia leaders" in failed
    assert re.search(r"2026-01-01 12:\d\d:\d\d UTC", failed)
    assert "broken" in dead and "HTTP 400" in dead and "UN chief" in dead
    pending = html[html.index('id="deliveries-pending"') : html.index('id="deliveries-failed"')]
    assert "notice" in pending  # the rejected edit's notice, not sent yet


def test_config_page_shows_the_version_in_force_and_the_last_rejected_edit(dashboard, filled):
    status, _, html = get(dashboard + "/config")
    assert status == 200
    text = text_of(html)
    version = filled.rt.config.current().version
    assert version in text and "latest" in text
    # the notice's title names the file and its first problem
    assert "Last rejected edit" in text and f"config rejected: {filled.rt.config.path}" in text
    assert f"version {version} stays in force" in text
    assert "not valid now" in text  # the file on disk is the refused edit


def test_watchlists_page_lists_each_watchlist_with_its_matches(dashboard):
    status, _, html = get(dashboard + "/watchlists")
    assert status == 200
    text = text_of(html)
    # the agency's copy of the UN chief story matched, but did not alert again
    assert "guterres 3 2 2026-01-01 12:00:00 UTC" in text
    assert "pmf 2 2 2026-01-01 12:00:00 UTC" in text
    assert 'href="/watchlists/pmf"' in html
    # a configured watchlist that never matched is listed too: its page has its near misses
    assert "No match in 30 days (in the config in force): rates ." in text
    assert 'href="/watchlists/rates"' in html


def test_watchlist_page_has_the_chart_data_and_recent_matches(dashboard):
    status, _, html = get(dashboard + "/watchlists/pmf")
    assert status == 200
    assert '<script src="/static/uPlot.iife.min.js"' in html
    assert "2 in 30 days" in html and "Militia leaders" in html
    data = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html)
    assert data and '"y": [0,' in data.group(1) and data.group(1).rstrip().endswith("}")


@pytest.mark.parametrize("path", PAGES)
def test_no_page_references_another_host(dashboard, path):
    status, headers, html = get(dashboard + path)
    assert status == 200
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for url in re.findall(r"""https?://[^\s"'<>)]+""", html):
        assert urllib.parse.urlsplit(url).hostname == "127.0.0.1", url


def test_static_assets_are_served_from_the_package(dashboard):
    status, headers, body = get(dashboard + "/static/uPlot.iife.min.js")
    assert status == 200 and "javascript" in headers["Content-Type"] and "uPlot" in body
    assert get(dashboard + "/static/../app.py")[0] == 404
    assert get(dashboard + "/static/nothing.js")[0] == 404


def test_the_dashboard_is_read_only(dashboard):
    request = urllib.request.Request(dashboard + "/alerts", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 405


def test_a_token_is_checked_on_every_request(dashboard_with_token):
    base = dashboard_with_token
    for path in [*PAGES, "/static/style.css"]:
        assert get(base + path)[0] == 401, path
        assert get(base + path, {"X-Newswatch-Token": "wrong"})[0] == 401, path
        assert get(base + path, {"X-Newswatch-Token": "s3cret-token"})[0] == 200, path
        assert get(base + path, {"Authorization": "Bearer s3cret-token"})[0] == 200, path
        assert get(base + path + "?token=s3cret-token")[0] == 200, path
    status, headers, _ = get(base + "/alerts?token=s3cret-token")
    assert status == 200
    assert "newswatch_token=" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]


def test_queries_read_what_the_pipeline_wrote(filled):
    with filled.rt.store.session() as s:
        rows = queries.alerts(s)
        assert {r.watchlist for r in rows} == {"pmf", "guterres"}
        assert queries.watchlist_names(s) == ["guterres", "pmf"]
        by_state = queries.deliveries(s)
        assert [d.channel for d in by_state["dead"]] == ["broken", "broken"]
        assert queries.last_rejected_edit(s) is not None


def test_every_page_renders_on_sqlite_and_postgresql(database_url, tmp_path, http_server):
    filled = fill(tmp_path, http_server, database_url)
    for base in serve(filled, token=None):
        for path in PAGES:
            assert get(base + path)[0] == 200, path
        _, _, html = get(base + "/watchlists/guterres")
        assert "3 in 30 days" in html and "<mark>Antonio Guterres</mark>" in html
        _, _, html = get(base + "/alerts?watchlist=pmf&since=1d")
        assert "Militia leaders" in html and "UN chief" not in html
        # the source filter (by the source's id) and the watchlist names (a skip scan) on
        # both databases
        with filled.rt.store.session() as s:
            assert {r.source for r in queries.alerts(s, source="wire")} == {"wire"}
            assert len(queries.alerts(s, source="wire")) == 4
            assert queries.alerts(s, source="gone-feed") == []
            assert queries.alerts(s, source="no-such-source") == []
            assert queries.watchlist_names(s) == ["guterres", "pmf"]


def test_watchlist_names_of_an_empty_database(sqlite_url):
    from worker.store.db import Store

    store = Store(sqlite_url)
    store.upgrade()
    with store.session() as s:
        assert queries.watchlist_names(s) == []


def alert_blocks(html: str) -> dict[str, str]:
    """Each alert's HTML by its title and source ("UN chief calls for ceasefire @ wire")."""
    out = {}
    for block in re.findall(r'<article class="alert">.*?</article>', html, flags=re.S):
        title = text_of(re.search(r"<h3>.*?</h3>", block, flags=re.S).group(0)).strip()
        source = re.search(r'<span class="source">(.*?)</span>', block).group(1)
        tag = re.search(r'class="tag">(.*?)</a>', block).group(1)
        out[f"{title} @ {source} ({tag})"] = block
    return out


def test_alerts_page_names_the_other_sources_of_the_same_story(dashboard):
    _, _, html = get(dashboard + "/alerts")
    blocks = alert_blocks(html)
    wire = blocks["UN chief calls for ceasefire @ wire (guterres)"]
    agency = blocks["UN chief urges ceasefire @ agency (guterres)"]
    # each copy links the other source's article; a story told once names no other
    assert "Also reported by" in wire and re.search(
        r'href="http://127\.0\.0\.1:\d+/b/un-chief"[^>]*>agency<', wire
    )
    assert "Also reported by" in agency and re.search(
        r'href="http://127\.0\.0\.1:\d+/a/un-chief"[^>]*>wire<', agency
    )
    assert "Also reported by" not in blocks["Militia leaders meet in Baghdad @ wire (pmf)"]
    # the copy did not alert again: no delivery; the first copy's, per channel
    assert "same story, not alerted again" in agency and "channels" not in agency
    assert "hook: sent" in text_of(wire) and "broken: dead" in text_of(wire)


def test_watchlist_page_shows_its_rule_as_configured_and_what_matched_with_it(dashboard):
    _, _, html = get(dashboard + "/watchlists/pmf")
    rule = html[html.index('id="rule"') : html.index('id="mentions"')]
    # the config in force, though the file on disk is now a refused edit
    assert "name: Popular Mobilization Forces" in rule and "- PMF" in rule and "- flaky" in rule
    together = text_of(html[html.index('id="together"') : html.index('id="recent"')])
    assert "guterres 1" in together and "Antonio Guterres 1" in together
    assert "latest 2 matches" in together
    recent = html[html.index('id="recent"') : html.index('id="near-misses"')]
    assert "Envoy meets militia commanders" in recent and "Militia leaders" in recent


def test_watchlist_page_shows_near_misses_with_the_rules_reason(dashboard):
    _, _, html = get(dashboard + "/watchlists/rates")
    near = text_of(html[html.index('id="near-misses"') :])
    assert "Markets steady after rate decision wire" in near
    assert "found: central bank" in near and 'rule needs "rate cut": not found' in unescape(near)
    assert "latest 200 stored" in near  # it says what was looked at
    rule = unescape(text_of(html[html.index('id="rule"') : html.index('id="mentions"')]))
    assert """rule: '"central bank" AND "rate cut"'""" in rule
    assert "No other watchlist matched the same articles" in html
    # a watchlist whose every article matched has no near miss
    _, _, html = get(dashboard + "/watchlists/guterres")
    assert "None among the latest 200 articles" in html


def test_watchlist_page_without_a_readable_config_says_so(filled):
    from worker.web.pages import Data

    broken = Data(filled.rt.store, filled.config, clock=filled.rt.clock)  # no version yet
    server = make(broken, "127.0.0.1", 0, None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        status, _, html = get(base + "/watchlists/pmf")
        assert status == 200 and "Militia leaders" in html
        assert html.count("No valid version of the config could be read") == 2  # rule, near
        status, _, html = get(base + "/sources")
        assert status == 200 and "disabled (by the config, or removed from it)" in html
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_sources_page_tells_removed_from_switched_off_and_draws_items_per_day(dashboard):
    _, _, html = get(dashboard + "/sources")
    row = {
        name: text_of(re.search(rf'<tr[^>]*id="source-{name}">.*?</tr>', html, re.S).group(0))
        for name in ("agency", "dead-feed", "gone-feed", "retired", "wire")
    }
    assert "switched off by newswatch after errors" in row["dead-feed"]
    assert "HTTP 410" in row["dead-feed"] and "http_410 (1 in a row)" in row["dead-feed"]
    assert "disabled: removed from the config" in row["retired"]
    assert "disabled" not in row["gone-feed"] and "http_404" in row["gone-feed"]
    # items per day: the data of one uPlot sparkline per source, 7 days to today
    data = json.loads(re.search(r'id="spark-data">(.*?)</script>', html, re.S).group(1))
    assert len(data["x"]) == 7 and data["x"][-1] == 1767225600  # 2026-01-01 UTC
    assert data["series"]["wire"] == [0] * 6 + [4]
    assert data["series"]["agency"][-1] == 1 and sum(data["series"]["gone-feed"]) == 0
    assert 'class="spark" data-source="wire"' in html
    assert "None: no feed has moved past what was seen" in html
    assert '<script src="/static/uPlot.iife.min.js"' in html


@pytest.mark.history(3)
def test_sources_page_lists_each_sources_gap_records(dashboard, filled):
    with filled.rt.store.session() as s:
        wire_id = s.scalar(select(m.Source.id).where(m.Source.name == "wire"))
        gaps = queries_panels.gaps_by_source(s)
        details = [g.detail for g in s.scalars(select(m.SourceGap).order_by(m.SourceGap.id))]
    assert list(gaps) == [wire_id]  # the feed moved past everything seen, day after day
    _, _, html = get(dashboard + "/sources")
    row = text_of(re.search(r'<tr[^>]*id="source-wire">.*?</tr>', html, re.S).group(0))
    newest = f"{gaps[wire_id].newest_at:%Y-%m-%d %H:%M:%S} UTC"
    assert f"{gaps[wire_id].count} last {newest}" in row
    agency = text_of(re.search(r'<tr[^>]*id="source-agency">.*?</tr>', html, re.S).group(0))
    assert "last " not in agency
    # each record, newest first, with what it was
    section = unescape(text_of(html[html.index('id="gap-records"') :]))
    assert f"the newest {len(details)}" in section
    assert section.index(newest) < section.index(details[0])
    for detail in details:
        assert detail in section


def test_story_copies_of_a_story_and_of_none(filled):
    with filled.rt.store.session() as s:
        rows = queries.alerts(s, watchlist="guterres")
        first = next(r for r in rows if r.title == "UN chief calls for ceasefire")
        copies = queries_panels.story_copies(s, [first.story_id or first.article_id, 10**9])
    key = first.story_id or first.article_id
    assert [c.source for c in copies[key]] == ["wire", "agency"]
    assert 10**9 not in copies
