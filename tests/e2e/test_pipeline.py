"""The whole path on real parts: beat -> fetch -> parse -> rules -> email + webhook.

Real `newswatch worker` and `newswatch beat` processes, Redis on 127.0.0.1
(or the embedded one), SQLite or PostgreSQL, a feed and article pages served
over HTTP on 127.0.0.1, a real SMTP server (aiosmtpd) and a webhook receiver.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tests.helpers.processes import NewswatchProcesses

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DATA = Path(__file__).resolve().parents[1] / "data"
SEED_PAGE = (DATA / "extract" / "seed-article.html").read_bytes()
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

SECOND_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Iraqi MP tables bill on foreign troops | Example News</title>
<meta property="article:published_time" content="2017-12-03T09:00:00Z">
</head><body><nav><a href="/">Home</a> <a href="/world">World</a></nav>
<article><h1>Iraqi MP tables bill on foreign troops</h1>
<p class="byline">By Jane Roe</p>
<p>Hadi al-Amiri, the head of the Badr Organization, on Sunday tabled a bill in the Iraqi
parliament that would set a timetable for foreign troops to leave the country.</p>
<p>Speaking to reporters in Baghdad, he said the bill had the support of several blocs and
would be debated before the end of the month. Let us see, one lawmaker said, whether it passes.</p>
<p>Government officials declined to comment on the proposal on Sunday evening.</p>
</article><aside><h3>Most read</h3><ul><li><a href="/x">Football results</a></li></ul></aside>
</body></html>"""


def rss(items: list[tuple[str, str, str]]) -> bytes:
    now = format_datetime(datetime(2017, 12, 3, tzinfo=UTC), usegmt=True)
    entries = "".join(
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        f"<pubDate>{now}</pubDate><description>{summary}</description></item>"
        for title, link, summary in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Example News</title><link>http://example.test/</link>{entries}</channel></rss>"
    ).encode()


def write_config(
    path: Path, feed_url: str, smtp_port: int, hook_url: str, alerts_file: Path
) -> None:
    path.write_text(
        f"""
sources:
  - name: example-news
    feed: {feed_url}
    every: 1s
    full_text: true
watchlists:
  - name: pmf
    names:
      - name: Popular Mobilization Forces
        aliases: [PMF, "Hashd al-Sha'abi"]
    notify: [desk, hook, archive]
  - name: ameri
    names:
      - name: Hadi al-Ameri
        aliases: [Hadi al-Amiri]
    notify: [desk, hook, archive]
  - name: crisis
    keywords: [crisis]
    notify: [desk, archive]
channels:
  - name: desk
    email: [desk@example.org]
    smtp: {{host: 127.0.0.1, port: {smtp_port}, sender: newswatch@example.org}}
  - name: hook
    webhook: {hook_url}
    secret: ${{TEST_WEBHOOK_SECRET}}
  - name: archive
    file: {alerts_file}
fetch:
  allow_networks: [127.0.0.0/8]
  deadline: 10
""",
        encoding="utf-8",
    )


@pytest.fixture
def news_site(make_http_server):
    """A feed whose ETag changes only when its items change, plus the article pages."""
    site = make_http_server()
    hook = make_http_server()
    hook.add("/hook", b"", status=204)
    state = {"items": []}

    def feed(request):
        body = rss(state["items"])
        etag = f'"{len(state["items"])}"'
        if request.headers.get("If-None-Match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, {"Content-Type": "application/rss+xml", "ETag": etag}, body

    site.routes["/feed.xml"] = feed
    site.add(
        "/articles/militias.html", SEED_PAGE, headers={"Content-Type": "text/html; charset=utf-8"}
    )
    site.add(
        "/articles/bill.html", SECOND_PAGE, headers={"Content-Type": "text/html; charset=utf-8"}
    )
    site.state = state
    site.hook = hook
    return site


def _hook_posts(hook):
    return [r for r in hook.requests if r.method == "POST" and r.path == "/hook"]


def _archive(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_scenario(
    tmp_path: Path, env: dict[str, str], news_site, smtp_server, *, layout: str
) -> None:
    """layout: "run" (the one command), "worker" (one prefork worker on every queue, and
    beat) or "split" (a threads worker for fetch/alerts, a prefork one for the rest)."""
    alerts_file = tmp_path / "alerts.jsonl"
    config = tmp_path / "newswatch.yaml"
    write_config(
        config,
        news_site.url("/feed.xml"),
        smtp_server.port,
        news_site.hook.url("/hook"),
        alerts_file,
    )
    news_site.state["items"] = [
        (
            "Iran-Backed Shiite Militias Demand U.S. Leave Iraq",
            news_site.url("/articles/militias.html"),
            "A senior commander demands U.S. forces leave.",
        ),
    ]
    procs = NewswatchProcesses(
        tmp_path, {**env, "NEWSWATCH_CONFIG": str(config), "TEST_WEBHOOK_SECRET": SECRET}
    )
    with procs:
        if layout == "run":
            procs.start("run", "run", "--concurrency=2", "--fetch-concurrency=4")
        elif layout == "split":
            procs.worker("io", concurrency=8, pool="threads", queues="fetch,alerts")
            procs.worker("cpu", concurrency=2, queues="control,parse,rules")
            procs.beat()
        else:
            procs.worker()
            procs.beat()
        # one email and one webhook per watched name found in the article
        procs.wait_for(
            lambda: len(smtp_server.received) >= 2 and len(_hook_posts(news_site.hook)) >= 2,
            90,
            "2 emails and 2 webhooks for the first article",
        )
        # several more polls of the unchanged feed (every 1s, answered 304) give nothing new
        polls = news_site.hits("/feed.xml")
        procs.wait_for(lambda: news_site.hits("/feed.xml") >= polls + 3, 30, "three more polls")
        time.sleep(2)
        assert len(smtp_server.received) == 2, [m.message["Subject"] for m in smtp_server.received]
        assert len(_hook_posts(news_site.hook)) == 2
        subjects = sorted(r.message["Subject"] for r in smtp_server.received)
        assert subjects == [
            "[ameri] Iran-Backed Shiite Militias Demand U.S. Leave Iraq",
            "[pmf] Iran-Backed Shiite Militias Demand U.S. Leave Iraq",
        ]
        # webhooks are signed per Standard Webhooks and carry the delivery id
        for post in _hook_posts(news_site.hook):
            payload = Webhook(SECRET).verify(post.body, dict(post.headers))
            assert payload["watchlist"] in ("pmf", "ameri")
            assert post.headers["webhook-id"]
        # the "crisis" watchlist stayed quiet: the page's "ISIS" is not "crisis"
        watchlists = sorted(a["watchlist"] for a in _archive(alerts_file))
        assert watchlists == ["ameri", "pmf"]

        # a new item later gives one more alert per channel, for its one watched name
        news_site.state["items"] = [
            (
                "Iraqi MP tables bill on foreign troops",
                news_site.url("/articles/bill.html"),
                "A bill on foreign troops.",
            ),
            *news_site.state["items"],
        ]
        procs.wait_for(
            lambda: len(smtp_server.received) >= 3 and len(_hook_posts(news_site.hook)) >= 3,
            60,
            "the alert for the second article",
        )
        polls = news_site.hits("/feed.xml")
        procs.wait_for(lambda: news_site.hits("/feed.xml") >= polls + 3, 30, "three more polls")
        time.sleep(2)
        assert len(smtp_server.received) == 3
        assert len(_hook_posts(news_site.hook)) == 3
        assert (
            smtp_server.received[-1].message["Subject"]
            == "[ameri] Iraqi MP tables bill on foreign troops"
        )
        assert sorted(a["watchlist"] for a in _archive(alerts_file)) == ["ameri", "ameri", "pmf"]
        # one stable id per delivery: email Message-ID and webhook-id never repeat
        ids = [r.message["Message-ID"] for r in smtp_server.received]
        assert len(set(ids)) == 3
        hook_ids = [p.headers["webhook-id"] for p in _hook_posts(news_site.hook)]
        assert len(set(hook_ids)) == 3


@pytest.mark.redis
def test_end_to_end_with_redis(tmp_path, database_url, redis_url, news_site, smtp_server):
    run_scenario(
        tmp_path,
        {"REDIS_URL": redis_url, "DATABASE_URL": database_url},
        news_site,
        smtp_server,
        layout="worker",
    )


@pytest.mark.redis
@pytest.mark.postgres
def test_end_to_end_threads_pool_for_fetch_and_alerts(
    tmp_path, postgres_url, redis_url, news_site, smtp_server
):
    """The production layout of docs/load.md: fetch and alerts on a threads pool (many
    tasks sharing one runtime, fetcher and engine), parse and rules on a prefork pool.
    Every alert arrives once: one email, one webhook, one archive line each."""
    run_scenario(
        tmp_path,
        {"REDIS_URL": redis_url, "DATABASE_URL": postgres_url},
        news_site,
        smtp_server,
        layout="split",
    )


def test_end_to_end_on_embedded_defaults(tmp_path, news_site, smtp_server):
    """No REDIS_URL, no DATABASE_URL: `newswatch run` brings its own Redis and SQLite."""
    run_scenario(tmp_path, {}, news_site, smtp_server, layout="run")
    # the embedded Redis went away with `newswatch run`
    pidfile = tmp_path / "data" / "redis" / "redis.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text())
        assert (
            not Path(f"/proc/{pid}").exists()
            or b"redis" not in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
