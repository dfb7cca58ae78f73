"""The hostile-input corpus (issue 10) through the real pipeline, on SQLite and PostgreSQL.

The cases are data: tests/data/hostile/cases.yaml (its header documents the format).
For each case a real HTTP server on 127.0.0.1 serves the hostile source beside a good
feed, and the worker's step functions run as beat and the workers would, under a
controlled clock, for 100 minutes: polls every 5 minutes, the sweep (retries), the
outbox tick (the 13:00 UTC digest of an email channel in Asia/Tokyo, notices). Then:

1. the good article alerted exactly once on the webhook, the file and the email digest;
2. the hostile unit ends in the recorded, classified state the case expects (source row,
   item outcomes, deliveries, notices), with a reason a person can read;
3. every item of both sources has an outcome (the drop ledger accounts for every item),
   and every delivery ended (sent, or dead with its reason) unless the case says otherwise;
4. no step function raised (they are called directly: an exception fails the test);
5. invariants for every case: stored text is clean and capped, rendered outputs carry no
   invisible format characters, no secret of the case appears in any row, log or output.

Config-file cases (a hostile edit of the running service's config) reuse the files and
expectations of tests/data/hostile-config/: the edit is refused with file and line, the
last good version stays in force, one `config_rejected` notice says why, and monitoring
goes on.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from tests.helpers.httpserver import RecordedRequest, TestServer
from tests.helpers.httpserver import serve as serve_http
from tests.helpers.pipeline import Clock, make_runtime
from worker.alerts import sending
from worker.articles import parsing
from worker.bootstrap import Runtime
from worker.core import clean
from worker.core.httpdate import FETCH_RETRY_AFTER_CAP
from worker.matching import applying
from worker.service import outbox
from worker.service.sweep import sweep
from worker.sources import polling
from worker.store import models as m
from worker.tracking import ledger

DATA = Path(__file__).resolve().parents[1] / "data"
CORPUS = DATA / "hostile" / "cases.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))["cases"]
CONFIG_EXPECTED = yaml.safe_load((DATA / "hostile-config" / "expected.yaml").read_text())

GOOD_TITLE = "Hadi al-Ameri meets the envoys in Baghdad"
DESK = "desk@example.org"  # the digest channel's address
NOW = "now@example.org"  # the address of a case's own immediate email channel
STEP = 600  # seconds of clock per beat cycle (the sources poll every 30 minutes)
CYCLES = 11  # 12:00 to 13:40 UTC: past every retry and the 13:00 UTC digest
# invisible format characters that must reach no rendered output (case 12)
INVISIBLE = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200e\u200f\ufeff")
UNCLEAN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
REPEAT = re.compile(r"\{repeat:(.*?):(\d+)\}", re.S)


# --- the data ----------------------------------------------------------------------------


def expand(value: Any, subs: dict[str, str]) -> Any:
    """`{base}` is the server's URL, `{host}` its host:port, `{smtp_port}` the SMTP
    server's port; `{repeat:TEXT:N}` is TEXT N times (big sizes)."""
    if isinstance(value, str):
        value = REPEAT.sub(lambda mo: mo.group(1) * int(mo.group(2)), value)
        for key, sub in subs.items():
            value = value.replace(key, sub)
        return value
    if isinstance(value, list):
        return [expand(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, subs) for k, v in value.items()}
    return value


def substitutions(server: TestServer, smtp_port: int) -> dict[str, str]:
    base = server.url("").rstrip("/")
    return {"{base}": base, "{host}": base.split("://", 1)[1], "{smtp_port}": str(smtp_port)}


def body_bytes(spec: dict[str, Any], text: str, subs: dict[str, str]) -> bytes:
    if "file" in spec:
        data = (DATA / spec["file"]).read_bytes()
    else:
        data = expand(text, subs).encode(spec.get("encode", "utf-8"))
    return gzip.compress(data, 9) if spec.get("gzip") else data


def serve(server: TestServer, path: str, spec: dict[str, Any], subs: dict[str, str]) -> None:
    """One route of a case: `body` (or `versions`, served in turn, the last one for
    ever after; or `file`), `status`, `headers`, `gzip`."""
    bodies = [body_bytes(spec, b, subs) for b in spec.get("versions") or [spec.get("body", "")]]
    status = int(spec.get("status", 200))
    headers = {k: str(v) for k, v in expand(spec.get("headers") or {}, subs).items()}
    if spec.get("gzip"):
        headers["Content-Encoding"] = "gzip"
    hits = {"n": 0}

    def answer(_request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        body = bodies[min(hits["n"], len(bodies) - 1)]
        hits["n"] += 1
        return status, headers, body

    server.routes[path] = answer


def good_feed(base: str) -> str:
    link = f"{base}/good/1"
    item = (
        f"<item><title>{GOOD_TITLE}</title><link>{link}</link><guid>{link}</guid>"
        "<description>Hadi al-Ameri met the envoys on Monday to discuss the withdrawal "
        "of the brigades from the city.</description></item>"
    )
    channel = f"<channel><title>Good</title>{item}</channel>"
    return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'


def build_config(
    case: dict[str, Any], server: TestServer, good: TestServer, smtp_port: int, tmp: Path
) -> str:
    subs = substitutions(server, smtp_port)
    base = good.url("").rstrip("/")
    watch_names: list[Any] = [
        {"name": "Popular Mobilization Forces", "aliases": ["PMF"]},
        {"name": "Hadi al-Ameri"},
        *case.get("names", []),
    ]
    # robots.txt is left out (a case may ask for it): each fetch of it makes the next
    # request to its host wait the fetcher's politeness interval, in real time
    polls = {"every": "30m", "respect_robots": False}
    sources: list[dict[str, Any]] = [{"name": "good", "feed": f"{base}/good.xml", **polls}]
    if "source" in case:
        sources.append({"name": "hostile", **polls, **expand(case["source"], subs)})
    config: dict[str, Any] = {
        "sources": sources,
        "watchlists": [
            {"name": "watch", "names": watch_names, "notify": ["hook", "lines", "desk"]},
            *expand(case.get("watchlists", []), subs),
        ],
        "channels": [
            {"name": "hook", "webhook": f"{base}/hook"},
            {"name": "lines", "file": str(tmp / "lines.jsonl")},
            {
                "name": "desk",
                "email": [DESK],
                "smtp": {"host": "127.0.0.1", "port": smtp_port, "sender": "nw@example.org"},
                "timezone": "Asia/Tokyo",
                "digest": "hourly",
            },
            {"name": "ops", "file": str(tmp / "ops.jsonl")},
            *expand(case.get("channels", []), subs),
        ],
        "notices": {"channel": "ops"},
        "fetch": {"allow_networks": ["127.0.0.0/8"], "deadline": 10, "min_interval": 0},
    }
    return yaml.safe_dump(config, allow_unicode=True, sort_keys=False)


# --- driving the steps, as beat and the workers do -----------------------------------------


@dataclass
class Run:
    rt: Runtime
    clock: Clock
    sent: Counter = field(default_factory=Counter)

    def cycle(self) -> None:
        rt = self.rt
        deliveries: list[str] = []
        items: list[int] = []
        for source_id in polling.dispatch_due(rt):
            items += polling.fetch_source(rt, source_id, deliveries)
        found = sweep(rt)
        articles = list(found.articles)
        for item_id in [*items, *found.items]:
            article_id = parsing.parse_item(rt, item_id, deliveries)
            if article_id is not None:
                articles.append(article_id)
        for article_id in articles:
            deliveries += applying.apply_rules(rt, article_id)
        deliveries += found.deliveries
        deliveries += outbox.tick(rt)
        while deliveries:  # and the notices raised on the way, to the end
            follow: list[str] = []
            for delivery_id in deliveries:
                sending.deliver(rt, delivery_id, follow)
            deliveries = follow

    def drive(self) -> None:
        for _ in range(CYCLES):
            self.cycle()
            self.clock.advance(STEP)


# --- what arrived ------------------------------------------------------------------------


def json_strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in json_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in json_strings(v)]
    return [value] if isinstance(value, str) else []


def jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@dataclass
class Arrived:
    hook: list[dict]  # standard webhook payloads
    hook_raw: list[RecordedRequest]
    lines: list[dict]
    digests: list[Any]  # email messages
    digest_alerts: list[str]  # one HTML block per alert in the digests
    mails: list[Any]  # immediate emails (a case's own channel, to NOW)
    notices: list[dict]

    @classmethod
    def collect(cls, good: TestServer, smtp_server: Any, tmp: Path) -> Arrived:
        raw = [r for r in good.requests if r.path == "/hook" and r.method == "POST"]
        # no header a title could have injected adds a recipient
        for envelope in smtp_server.envelopes:
            assert set(envelope.rcpt_tos) <= {DESK, NOW}, envelope.rcpt_tos
            msg = envelope.message
            assert msg["Bcc"] is None and msg["Cc"] is None, msg.items()
            assert "\n" not in str(msg["Subject"]) and "\r" not in str(msg["Subject"])
        messages = [x for x in smtp_server.messages if x["To"] == DESK]
        mails = [x for x in smtp_server.messages if x["To"] == NOW]
        blocks = [
            block
            for msg in messages
            for block in msg.get_body(("html",)).get_content().split('class="alert"')[1:]
        ]
        return cls(
            hook=[json.loads(r.body) for r in raw],
            hook_raw=raw,
            lines=jsonl(tmp / "lines.jsonl"),
            digests=messages,
            digest_alerts=blocks,
            mails=mails,
            notices=jsonl(tmp / "ops.jsonl"),
        )

    def per_channel(self) -> dict[str, list[str]]:
        """The alerted article titles per channel."""
        return {
            "hook": [p["article"]["title"] for p in self.hook],
            "lines": [p["article"]["title"] for p in self.lines if "article" in p],
            "desk": [
                GOOD_TITLE if GOOD_TITLE in block else "(hostile)" for block in self.digest_alerts
            ],
        }

    def rendered_texts(self) -> dict[str, list[str]]:
        return {
            "webhook": [s for p in self.hook for s in json_strings(p)],
            "file": [s for p in self.lines for s in json_strings(p)],
            "email subject": [str(msg["Subject"]) for msg in self.digests + self.mails],
            "email text": [
                msg.get_body(("plain",)).get_content() for msg in self.digests + self.mails
            ],
            "email html": [
                msg.get_body(("html",)).get_content() for msg in self.digests + self.mails
            ],
            "notices": [s for n in self.notices for s in json_strings(n)],
        }


# --- the test ----------------------------------------------------------------------------


def case_id(case: dict[str, Any]) -> str:
    return case["name"]


@pytest.fixture
def good() -> Iterator[TestServer]:
    """The good source and the webhook receiver, on a host of their own: the fetcher's
    per-host politeness (real time) then never makes one source wait for the other."""
    with serve_http(host="127.0.0.2") as ts:
        base = ts.url("").rstrip("/")
        ts.add("/hook", b"", status=204)
        ts.add("/good.xml", good_feed(base), headers={"Content-Type": "application/rss+xml"})
        yield ts


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_hostile_case(case, tmp_path, database_url, http_server, good, smtp_server, caplog):
    caplog.set_level(logging.INFO)
    server = http_server  # the hostile source's
    subs = substitutions(server, smtp_server.port)
    for path, spec in (case.get("serve") or {}).items():
        serve(server, expand(path, subs), spec, subs)
    clock = Clock()  # 2026-01-01 12:00 UTC
    text = build_config(case, server, good, smtp_server.port, tmp_path)
    rt = make_runtime(tmp_path, database_url, text, clock)
    good_version = rt.config.current().version
    if "config_file" in case:  # a hostile edit of the running service's config
        rt.config.path.write_bytes((DATA / "hostile-config" / case["config_file"]).read_bytes())

    Run(rt, clock).drive()

    arrived = Arrived.collect(good, smtp_server, tmp_path)
    expect = case.get("expect") or {}
    check_good_alerted_once(arrived)
    check_hostile_alerts(arrived, expect.get("alerts", 0))
    assert len(arrived.mails) == expect.get("mails", 0), [x["Subject"] for x in arrived.mails]
    check_ledger(rt, expect)
    check_deliveries(rt, expect)
    assert sorted(n["event"] for n in arrived.notices) == sorted(expect.get("notices", [])), [
        (n["event"], n["text"][:300]) for n in arrived.notices
    ]
    if "source" in case:
        check_source(rt, expect)
    if "config_file" in case:
        check_config_refused(rt, case["config_file"], good_version, arrived)
    check_stored(rt, expect)
    check_clean_and_capped(rt)
    check_outputs(arrived)
    check_secrets(rt, arrived, caplog, expect.get("secrets", []))


def check_good_alerted_once(arrived: Arrived) -> None:
    for channel, titles in arrived.per_channel().items():
        assert titles.count(GOOD_TITLE) == 1, (channel, titles)
    ids = [r.headers["webhook-id"] for r in arrived.hook_raw]
    assert len(ids) == len(set(ids)), "a webhook delivery was sent twice"
    assert len(arrived.digests) == 1, [m["Subject"] for m in arrived.digests]


def check_hostile_alerts(arrived: Arrived, expected: int) -> None:
    for channel, titles in arrived.per_channel().items():
        hostile = [t for t in titles if t != GOOD_TITLE]
        assert len(hostile) == expected, (channel, hostile)


def hostile_source_id(rt: Runtime) -> int | None:
    with rt.store.session() as s:
        return s.scalar(select(m.Source.id).where(m.Source.name == "hostile"))


def check_ledger(rt: Runtime, expect: dict[str, Any]) -> None:
    """Every item has an outcome; the hostile source's items have the expected ones."""
    with rt.store.session() as s:
        rows = Counter(
            s.execute(
                select(m.Source.name, ledger.outcome_of()).join(
                    m.Source, m.Source.id == m.Item.source_id
                )
            ).all()
        )
        unreasoned = s.scalars(
            select(m.Item.id).where(
                m.Item.outcome.in_(("refused", "quarantined", "duplicate", "excluded")),
                func.coalesce(m.Item.outcome_detail, "") == "",
            )
        ).all()
        states = Counter(s.scalars(select(m.Item.state)))
    by_source: dict[str, dict[str, int]] = {}
    for (name, outcome), n in rows.items():
        by_source.setdefault(name, {})[outcome] = n
    assert ledger.PENDING not in {o for c in by_source.values() for o in c}, (by_source, states)
    assert by_source.get("good") == {"matched": 1}, by_source
    assert by_source.get("hostile", {}) == expect.get("outcomes", {}), by_source
    assert not unreasoned, f"items {unreasoned} have an outcome without its reason"


def check_deliveries(rt: Runtime, expect: dict[str, Any]) -> None:
    """Sent, or dead with a reason; `failed` only where a case expects a long retry."""
    with rt.store.session() as s:
        rows = s.execute(
            select(m.Delivery.channel, m.Delivery.state, m.Delivery.last_error, m.Delivery.kind)
        ).all()
        batches = s.execute(select(m.DigestBatch.state, m.DigestBatch.size)).all()
    dead = Counter(ch for ch, state, _, _ in rows if state == "dead")
    failed = Counter(ch for ch, state, _, _ in rows if state == "failed")
    open_ = [(ch, state) for ch, state, _, _ in rows if state not in ("sent", "dead", "failed")]
    assert dict(dead) == expect.get("dead", {}), rows
    assert dict(failed) == expect.get("failed", {}), rows
    assert not open_, open_
    for ch, state, error, _ in rows:
        if state in ("dead", "failed"):
            assert error, f"{state} delivery on {ch} without a reason"
    assert [state for state, _ in batches] == ["sent"], batches


def check_source(rt: Runtime, expect: dict[str, Any]) -> None:
    want = expect.get("source", "ok")
    with rt.store.session() as s:
        src = s.scalar(select(m.Source).where(m.Source.name == "hostile"))
        good = s.scalar(select(m.Source).where(m.Source.name == "good"))
        assert src is not None and good is not None
        s.expunge_all()
    assert good.last_error_kind is None and good.consecutive_failures == 0
    if want == "ok":
        assert src.last_error_kind is None and src.last_error is None, src.last_error
        assert src.last_success_at is not None
    else:
        kind = want.removeprefix("error:")
        assert src.last_error_kind == kind, (src.last_error_kind, src.last_error)
        assert src.last_error and src.consecutive_failures >= 1
        assert src.last_success_at is None
    if "reason" in expect:
        assert expect["reason"] in (src.last_error or ""), src.last_error
    # however far a Retry-After or a backoff points, the next poll is within its caps
    horizon = rt.now() + timedelta(seconds=FETCH_RETRY_AFTER_CAP)
    assert src.next_fetch_at <= horizon and good.next_fetch_at <= horizon


def check_config_refused(rt: Runtime, name: str, good_version: str, arrived: Arrived) -> None:
    assert rt.config.current().version == good_version  # the last good version stays
    error = rt.config.last_error or ""
    for line, text in CONFIG_EXPECTED[name]:
        where = f"{rt.config.path}:{line}: "
        assert any(x.startswith(where) and text in x for x in error.splitlines()), (text, error)
    (notice,) = [n for n in arrived.notices if n["event"] == "config_rejected"]
    assert f"{rt.config.path}:{CONFIG_EXPECTED[name][0][0]}:" in notice["text"], notice


def check_stored(rt: Runtime, expect: dict[str, Any]) -> None:
    """Texts the hostile source's articles must (or must not) hold: names intact."""
    source_id = hostile_source_id(rt)
    with rt.store.session() as s:
        arts = s.execute(
            select(m.Article.title, m.Article.body).where(m.Article.source_id == source_id)
        ).all()
        details = [
            d
            for d in s.scalars(select(m.Item.outcome_detail).where(m.Item.source_id == source_id))
            if d
        ]
    titles = [t for t, _ in arts]
    bodies = [b for _, b in arts]
    for text in expect.get("titles", []):
        assert any(text in t for t in titles), (text, titles)
    for text in expect.get("bodies", []):
        assert any(text in b for b in bodies), (text, [b[:200] for b in bodies])
    for text in expect.get("absent", []):
        assert not any(text in x for x in titles + bodies), text
    for text in expect.get("details", []):
        assert any(text in d for d in details), (text, details)


def check_clean_and_capped(rt: Runtime) -> None:
    with rt.store.session() as s:
        arts = s.scalars(select(m.Article)).all()
        texts = [
            *(
                x
                for a in arts
                for x in (a.title, a.body, a.lead, *(a.authors or []), *(a.tags or []))
            ),
            *s.scalars(select(m.Item.error)),
            *s.scalars(select(m.Item.outcome_detail)),
            *s.scalars(select(m.Source.last_error)),
            *s.scalars(select(m.Delivery.last_error)),
        ]
        for a in arts:
            assert len(a.title) <= clean.MAX_TITLE and len(a.body) <= clean.MAX_BODY
            assert len(a.lead or "") <= clean.MAX_SUMMARY
            assert len(a.authors or []) <= clean.MAX_AUTHORS
            assert len(a.tags or []) <= clean.MAX_TAGS
            for when in (a.published_at, a.modified_at):
                assert when is None or clean.EARLIEST <= when <= clean.LATEST, when
    for text in texts:
        if text:
            assert not UNCLEAN.search(text), repr(text[:200])


def check_outputs(arrived: Arrived) -> None:
    for where, texts in arrived.rendered_texts().items():
        found = [hex(ord(c)) for text in texts for c in text if c in INVISIBLE]
        assert not found, (where, found)
        for text in texts:
            assert not UNCLEAN.search(text.replace("\r", "")), (where, repr(text[:200]))
    for request in arrived.hook_raw:
        assert len(request.body) < 100_000  # capped fields: never a 9 MB message


def check_secrets(rt: Runtime, arrived: Arrived, caplog: Any, secrets: list[str]) -> None:
    if not secrets:
        return
    with rt.store.session() as s:
        rows = [
            *s.scalars(select(m.Source.last_error)),
            *s.scalars(select(m.Source.disabled_reason)),
            *s.scalars(select(m.Delivery.last_error)),
            *(json.dumps(n) for n in s.scalars(select(m.Delivery.notice))),
            *s.scalars(select(m.DeliveryAttempt.error)),
            *s.scalars(select(m.Item.error)),
        ]
    texts = [
        *(r for r in rows if r),
        *(x for xs in arrived.rendered_texts().values() for x in xs),
        caplog.text,
    ]
    for secret in secrets:
        for text in texts:
            assert secret not in text, (secret, text[:300])


def test_every_issue_case_and_class_is_in_the_corpus():
    covered = {n for case in CASES for n in case.get("covers", [])}
    assert covered == set(range(1, 15)), sorted(set(range(1, 15)) - covered)
    classes = {case["class"] for case in CASES}
    assert {"dates", "patterns", "sizes", "encodings", "controls", "identity"} <= classes
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names))
    for case in CASES:
        assert ("source" in case) != ("config_file" in case), case["name"]
        if "config_file" in case:
            assert case["config_file"] in CONFIG_EXPECTED, case["name"]
