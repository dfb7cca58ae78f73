"""A database filled by the real pipeline steps (tests/helpers/pipeline.py), and the
dashboard serving it over real HTTP on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.pipeline import Clock, make_runtime, rss, run_all
from worker.alerts.notices import check_notices
from worker.bootstrap import Runtime
from worker.web.pages import Data
from worker.web.serve import make

ARTICLE = """<html><head><title>{title}</title></head><body><nav>Home | World</nav><article>
<h1>{title}</h1><p>{body}</p><p>Officials said more details would follow later in the week,
and that talks would continue in the capital with all parties present.</p></article>
<footer>Copyright Example</footer></body></html>"""

FEED = {"Content-Type": "application/rss+xml"}
HTML = {"Content-Type": "text/html"}

STORIES = {
    "/a/pmf-talks": (
        "Militia leaders meet in Baghdad",
        "Leaders of the Popular Mobilization Forces met government envoys on Tuesday "
        "to discuss the future of the PMF within the state security apparatus.",
    ),
    "/a/un-chief": (
        "UN chief calls for ceasefire",
        "Secretary-General Antonio Guterres called on all parties to agree a ceasefire "
        "and open the crossings for aid convoys without delay.",
    ),
    "/a/envoy": (
        "Envoy meets militia commanders",
        "An envoy of Antonio Guterres met commanders of the Popular Mobilization Forces "
        "north of the capital to ask for safe passage for the aid convoys.",
    ),
    "/a/markets": (
        "Markets steady after rate decision",
        "Shares closed little changed after the central bank held its main rate, "
        "as traders weighed the outlook for inflation and growth.",
    ),
}


def config_text(server) -> str:
    return f"""
sources:
  - name: wire
    feed: {server.url("/feed.xml")}
    every: 5m
    full_text: true
  - name: gone-feed
    feed: {server.url("/missing.xml")}
    every: 10m
  - name: agency
    feed: {server.url("/agency.xml")}
    every: 5m
    full_text: true
  - name: dead-feed
    feed: {server.url("/gone.xml")}
    every: 10m
    disable_after: 1
  - name: retired
    feed: {server.url("/retired.xml")}
    every: 30m
watchlists:
  - name: pmf
    names: [{{name: Popular Mobilization Forces, aliases: [PMF]}}]
    notify: [hook, flaky]
  - name: guterres
    names: [Antonio Guterres]
    notify: [hook, broken]
  - name: rates
    rule: '"central bank" AND "rate cut"'
    notify: [hook]
channels:
  - name: hook
    webhook: {server.url("/hook")}
  - name: flaky
    webhook: {server.url("/flaky")}
  - name: broken
    webhook: {server.url("/broken")}
notices:
  channel: hook
fetch:
  allow_networks: [127.0.0.0/8]
  deadline: 10
  min_interval: 0  # one local server for every source: no pause between its requests
"""


@dataclass
class Filled:
    rt: Runtime
    config: Path
    clock: Clock
    server: Any


DAILY = [
    ("PMF units redeploy near {place}", "Units of the Popular Mobilization Forces {act}."),
    ("Guterres visits {place}", "Antonio Guterres {act}."),
    ("Parliament debates PMF law in {place}", "Members argued over the PMF law as {act}."),
]
# Each day's stories differ in more than the day's number (places, what happened, a
# closing line of their own), as real news does: the same text every day would be one
# story by its fingerprint, and the Alerts page would show every day as a copy.
PLACES = ["Mosul", "Kirkuk", "Basra", "Erbil", "Najaf", "Tikrit", "Samarra", "Ramadi"]
ACTS = [
    "moved north after a night of shelling along the river road",
    "met aid workers and doctors at a crowded field hospital",
    "handed over checkpoints to the army before the harvest season",
    "opened talks with tribal elders about rebuilding two bridges",
    "reported three convoys delayed by flooding on the highway",
    "announced a budget for salaries, fuel and new barracks",
    "toured a school that reopened after four years of closure",
]
CLOSINGS = [
    "Residents said prices of bread and fuel had doubled since spring.",
    "A spokesman declined to comment on the number of casualties.",
    "Engineers expect the power station to reopen within a month.",
    "Observers from the neighbouring provinces were invited to attend.",
    "Farmers complained that the irrigation canals are still blocked.",
]


def daily_article(day: int, n: int) -> tuple[str, str]:
    """Day `day`'s story `n`: its title and body."""
    title, body = DAILY[n]
    place = PLACES[(day * 3 + n) % len(PLACES)]
    act = ACTS[(day * 2 + n * 3) % len(ACTS)]
    closing = CLOSINGS[(day + n * 2) % len(CLOSINGS)]
    return (
        f"{title.format(place=place)} (day {day + 1})",
        f"{body.format(act=act)} {closing} Day {day + 1}.",
    )


def add_history(filled: Filled, days: int) -> None:
    """`days` more days of news through the real pipeline, one pass a day: each day the
    feed shows that day's stories (some days more of them than others)."""
    server, clock = filled.server, filled.clock
    for day in range(days):
        clock.advance(86400)
        items = []
        for n in range(1 + (day * 7) % len(DAILY)):
            title, body = daily_article(day, n)
            path = f"/a/day{day}-{n}"
            server.add(path, ARTICLE.format(title=title, body=body), headers=HTML)
            items.append((title, server.url(path)))
        server.add("/feed.xml", rss(*items), headers=FEED)
        run_all(filled.rt)


@pytest.fixture
def filled(request: pytest.FixtureRequest, tmp_path: Path, http_server) -> Filled:
    """One pass of the real pipeline on SQLite (`fill`). A test marked `history(DAYS)`
    gets that many more days first."""
    marker = request.node.get_closest_marker("history")
    return fill(tmp_path, http_server, f"sqlite:///{tmp_path / 'newswatch.db'}", marker)


# the agency's copy of the UN chief story: another source, a few words changed (a copy
# of the same story by its fingerprint, not the same text)
COPY = (
    "UN chief urges ceasefire",
    "Secretary-General Antonio Guterres called on all parties to agree a ceasefire "
    "and to open the crossings for aid convoys without any delay.",
)


def fill(tmp_path: Path, http_server, database_url: str, history: Any = None) -> Filled:
    """One pass of the real pipeline: four articles (three match, one of them two
    watchlists; one nearly matches a third), another source's copy of one story,
    deliveries sent, failed (500) and dead (400), a source whose feed is gone (404), one
    switched off after a 410, one then removed from the config, and a rejected config edit
    recorded as a notice."""
    http_server.add("/hook", b"", status=204)
    http_server.add("/flaky", b"busy", status=500)
    http_server.add("/broken", b"bad request", status=400)
    http_server.add("/gone.xml", b"gone", status=410)
    http_server.add("/retired.xml", rss(), headers=FEED)
    for path, (title, body) in {**STORIES, "/b/un-chief": COPY}.items():
        page = ARTICLE.format(title=title, body=body)
        http_server.add(path, page, headers={"Content-Type": "text/html"})
    items = [(title, http_server.url(path)) for path, (title, _) in STORIES.items()]
    http_server.add("/feed.xml", rss(*items), headers=FEED)
    http_server.add("/agency.xml", rss((COPY[0], http_server.url("/b/un-chief"))), headers=FEED)
    clock = Clock()
    rt = make_runtime(tmp_path, database_url, config_text(http_server), clock)
    run_all(rt)
    filled = Filled(rt, tmp_path / "newswatch.yaml", clock, http_server)
    # `retired` taken out of the config: the next pass disables it, its history kept
    text = filled.config.read_text()
    start = text.index("  - name: retired")
    filled.config.write_text(text[:start] + text[text.index("watchlists:") :])
    run_all(rt)
    if history is not None:
        add_history(filled, history.args[0])
    # an edit that is refused: the service keeps the last good version and says so
    config = filled.config
    config.write_text(config.read_text() + "\n  bogus: [unclosed\n")
    clock.advance(60)
    check_notices(rt)
    return filled


@pytest.fixture
def dashboard(filled: Filled) -> Iterator[str]:
    """The dashboard over `filled`, on a free port of 127.0.0.1: its base URL."""
    yield from serve(filled, token=None)


@pytest.fixture
def dashboard_with_token(filled: Filled) -> Iterator[str]:
    yield from serve(filled, token="s3cret-token")


def serve(filled: Filled, token: str | None) -> Iterator[str]:
    # the runtime's config in force: the last good version through the refused edit
    data = Data(filled.rt.store, filled.config, clock=filled.rt.clock, live=filled.rt.config)
    server = make(data, "127.0.0.1", 0, token)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
