"""Parse and rules messages carry batches of ids (app.enqueue_batch), and each id in a batch
is still claimed, done and failed on its own row: one bad id neither fails nor drops the
others. A message of one id (sent by an older release, still queued) works as before.

The tasks are called in this process on an app whose runtime is the test's (SQLite and
PostgreSQL); the follow-up messages go to a real Redis and are read back from its queues.
No worker runs.
"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest
import redis
from sqlalchemy import select

from tests.helpers.pipeline import Clock, make_runtime, rss
from worker.app import create_app, enqueue_batch
from worker.core.states import ItemState, RulesState
from worker.settings import Settings
from worker.sources import polling
from worker.store import items
from worker.store import models as m

PAGE = """<html><head><title>{t}</title></head><body><nav>Home</nav><article><h1>{t}</h1>
<p>{t}: officials said more details would follow later in the week, and that talks would
continue in the capital with all parties present.</p><p>{t} {t} {t} and more of it.</p>
</article><footer>Copyright Example</footer></body></html>"""


def config(server) -> str:
    return f"""
sources:
  - {{name: wire, feed: '{server.url("/feed.xml")}', every: 5m, full_text: true}}
watchlists:
  - {{name: never, keywords: [Zephyr], notify: [archive]}}
channels:
  - {{name: archive, file: 'alerts.jsonl'}}
fetch:
  allow_networks: [127.0.0.0/8]
  deadline: 10
"""


@pytest.fixture
def pipeline(tmp_path, database_url, redis_url, http_server):
    """The runtime, the app whose tasks run on it, and the new items of one poll: two good
    pages and, between them, a page that is gone (404)."""
    import worker.tasks  # registers the shared tasks on the app

    titles = ["Harbour reopens", "Gone page", "Bridge repaired"]
    links = [http_server.url(f"/a/{n}") for n in range(3)]
    for n, title in enumerate(titles):
        if title != "Gone page":
            body = PAGE.format(t=title).encode()
            http_server.add(f"/a/{n}", body, headers={"Content-Type": "text/html"})
    http_server.add("/a/1", b"gone", status=404)
    feed = rss(*zip(titles, links, strict=True))
    http_server.add("/feed.xml", feed, headers={"Content-Type": "application/rss+xml"})
    rt = make_runtime(tmp_path, database_url, config(http_server), Clock())
    (source_id,) = polling.dispatch_due(rt)
    item_ids = polling.fetch_source(rt, source_id)
    assert len(item_ids) == 3
    with rt.store.session() as s:
        by_url = {i.data["url"]: i.id for i in s.scalars(select(m.Item))}
    ids = [by_url[url] for url in links]
    app = create_app(
        Settings.from_env({"REDIS_URL": redis_url, "NEWSWATCH_DATA_DIR": str(tmp_path)})
    )
    app.runtime = SimpleNamespace(get=lambda: rt)  # type: ignore[assignment]
    return SimpleNamespace(
        rt=rt, app=app, ids=ids, tasks=worker.tasks, queue=redis.Redis.from_url(redis_url)
    )


def queued(client: redis.Redis, queue: str) -> list:
    """The first argument (the ids) of each message waiting in `queue`."""
    return [
        json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0]
        for raw in client.lrange(queue, 0, -1)
    ]


def test_a_batch_with_a_bad_item_parses_the_others_and_fails_the_bad_one(pipeline):
    rt, good_a, bad, good_b = pipeline.rt, *pipeline.ids
    pipeline.app.tasks[pipeline.tasks.PARSE](pipeline.ids)
    with rt.store.session() as s:
        a, gone, b = (items.get_item(s, i) for i in (good_a, bad, good_b))
        assert a.state == ItemState.PARSED and b.state == ItemState.PARSED
        assert gone.state == ItemState.FAILED
        assert "404" in gone.error and gone.error_kind  # a reason a person can read
        articles = [a.article_id, b.article_id]
    # the two articles go on to the rules in one message
    assert queued(pipeline.queue, "rules") == [articles]
    # the same batch again (a redelivered message): every row is done, nothing is sent
    pipeline.queue.delete("rules")
    pipeline.app.tasks[pipeline.tasks.PARSE](pipeline.ids)
    assert queued(pipeline.queue, "rules") == []


def test_a_rules_batch_with_a_bad_article_matches_the_others(pipeline, monkeypatch):
    rt, tasks = pipeline.rt, pipeline.tasks
    pipeline.app.tasks[tasks.PARSE](pipeline.ids)
    (articles,) = queued(pipeline.queue, "rules")
    poisoned = articles[0]
    claim = items.claim_article

    def claim_or_break(session, article_id, *args):
        if article_id == poisoned:
            raise ValueError("this row breaks the claim")
        return claim(session, article_id, *args)

    monkeypatch.setattr(items, "claim_article", claim_or_break)
    pipeline.app.tasks[tasks.RULES]([poisoned, *articles[1:]])
    with rt.store.session() as s:
        bad, *others = (items.get_article(s, i) for i in articles)
        assert all(o.rules_state == RulesState.DONE for o in others)
        # the bad one: its error noted on its row, still pending for the sweep to retry
        assert bad.rules_state == RulesState.PENDING
        assert bad.error_kind == "internal"
        assert "ValueError: this row breaks the claim" in bad.error
    monkeypatch.setattr(items, "claim_article", claim)
    pipeline.app.tasks[tasks.RULES](poisoned)  # one id, as an older release sent it
    with rt.store.session() as s:
        assert items.get_article(s, poisoned).rules_state == RulesState.DONE


def test_a_message_of_one_id_still_works(pipeline):
    good_a = pipeline.ids[0]
    pipeline.app.tasks[pipeline.tasks.PARSE](good_a)
    with pipeline.rt.store.session() as s:
        item = items.get_item(s, good_a)
        assert item.state == ItemState.PARSED
    assert queued(pipeline.queue, "rules") == [[item.article_id]]


def test_enqueue_batch_sends_twenty_ids_a_message(pipeline):
    enqueue_batch(pipeline.app, pipeline.tasks.PARSE, range(45))
    sizes = sorted(len(ids) for ids in queued(pipeline.queue, "parse"))
    assert sizes == [5, 20, 20]
