"""The digest and notice webhook payloads against their JSON Schemas
(docs/webhook-digest.schema.json, docs/webhook-notice.schema.json), like the match
payload in test_render.py: real renderings, the example files, and broken payloads."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from tests.helpers.schemas import example, webhook_validator
from tests.unit.test_render import make_alert
from worker.alerts.digest import Notice, digest_payload, notice_payload, update_payload
from worker.alerts.render import webhook_payload


def digest() -> dict[str, Any]:
    """Three watchlists, several stories, one with other sources -- as JSON on the wire."""
    alerts = [
        make_alert(
            delivery_id=f"d{i}", watchlist=wl, url=f"https://e.org/{wl}/{i}",
            title=f"Story {i} for {wl}",
            other_sources=(("wire", f"https://wire.example.net/{i}"),) if i == 2 else (),
        )
        for i, wl in enumerate(["alpha", "beta", "alpha", "gamma", "beta", "alpha"])
    ]  # fmt: skip
    return json.loads(json.dumps(digest_payload("batch-1", "research-hook", alerts)))


NOTICES = [
    Notice(
        "n-1", "source_failing", "source wire failing for 2 h",
        "Source wire has not been fetched successfully since 2026-01-01T12:00:00+00:00 "
        "(7 failure(s) in a row). Last error: HTTP 500",
        datetime(2026, 1, 1, 14, tzinfo=UTC),
    ),
    Notice(
        "n-2", "delivery_dead", "delivery to hook is dead (alpha)",
        "Delivery d-1 to channel hook gave up after 8 attempt(s): HTTP 410\n"
        "Retry it with: newswatch deliveries retry d-1",
        datetime(2026, 1, 1, 12, 0, 0, 123456),  # naive: taken as UTC
    ),
    Notice(
        "n-3", "config_rejected", "watchlist config rejected",
        "A change to newswatch.yaml was refused; version abc stays in force.\n\n"
        "newswatch.yaml:29: bogus_section: unknown key",
        datetime(2026, 1, 1, 18, tzinfo=UTC),
    ),
]  # fmt: skip


def notice(n: Notice) -> dict[str, Any]:
    return json.loads(json.dumps(notice_payload(n)))


@pytest.mark.parametrize("name", ["digest", "notice"])
def test_the_schemas_are_draft_2020_12(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(webhook_validator(name).schema)


def test_a_digest_of_several_watchlists_and_stories_matches_its_schema() -> None:
    payload = digest()
    webhook_validator("digest").validate(payload)
    assert payload["type"] == "newswatch.digest" and payload["id"] == "batch-1"
    assert payload["count"] == len(payload["alerts"]) == 6
    assert {a["watchlist"] for a in payload["alerts"]} == {"alpha", "beta", "gamma"}
    match = webhook_validator("payload")
    for alert in payload["alerts"]:  # the entries are match payloads, checked through the $ref
        match.validate(alert)


def test_a_digest_entry_that_is_an_update_still_matches() -> None:
    payload = digest()
    payload["alerts"][0] = json.loads(json.dumps(update_payload(make_alert())))
    webhook_validator("digest").validate(payload)


@pytest.mark.parametrize("n", NOTICES, ids=[n.event for n in NOTICES])
def test_each_notice_event_matches_its_schema(n: Notice) -> None:
    payload = notice(n)
    webhook_validator("notice").validate(payload)
    assert payload["type"] == "newswatch.notice" and payload["event"] == n.event


@pytest.mark.parametrize(
    ("name", "real"),
    [("digest", digest), ("notice", lambda: notice(NOTICES[0])), ("payload", None)],
)
def test_the_examples_match_their_schemas(name: str, real: Any) -> None:
    ex = example(name)
    webhook_validator(name).validate(ex)
    if real is not None:
        assert set(ex) == set(real())
    if name == "digest":
        assert ex["count"] == len(ex["alerts"])
        assert len({a["watchlist"] for a in ex["alerts"]}) > 1
        assert set(ex["alerts"][0]) == set(webhook_payload(make_alert()))


def _drop(key: str):
    return lambda p: p.pop(key)


def _set(key: str, value: Any):
    return lambda p: p.__setitem__(key, value)


def _in_alert(change):
    return lambda p: change(p["alerts"][1])


BROKEN_DIGESTS = {
    "no alerts": _drop("alerts"),
    "no id": _drop("id"),
    "count a string": _set("count", "6"),
    "empty alerts": _set("alerts", []),
    "wrong type": _set("type", "newswatch.match"),
    "alert without match": _in_alert(_drop("match")),  # the $ref is followed
    "alert title not a string": _in_alert(lambda a: a["article"].__setitem__("title", 7)),
}
BROKEN_NOTICES = {
    "no at": _drop("at"),
    "no event": _drop("event"),
    "unknown event": _set("event", "no_such_event"),
    "title a number": _set("title", 1),
    "at not UTC": _set("at", "2026-01-01T14:00:00+01:00"),
    "at null": _set("at", None),
    "version 2": _set("version", 2),
}


@pytest.mark.parametrize("change", BROKEN_DIGESTS.values(), ids=BROKEN_DIGESTS.keys())
def test_a_broken_digest_fails_the_schema(change) -> None:
    payload = digest()
    change(payload)
    with pytest.raises(jsonschema.ValidationError):
        webhook_validator("digest").validate(payload)


@pytest.mark.parametrize("change", BROKEN_NOTICES.values(), ids=BROKEN_NOTICES.keys())
def test_a_broken_notice_fails_the_schema(change) -> None:
    payload = notice(NOTICES[0])
    change(payload)
    with pytest.raises(jsonschema.ValidationError):
        webhook_validator("notice").validate(payload)


def test_the_examples_are_not_each_others() -> None:
    # each schema refuses the other payload kinds
    for name, other in [("digest", "notice"), ("notice", "digest"), ("payload", "digest")]:
        with pytest.raises(jsonschema.ValidationError):
            webhook_validator(name).validate(copy.deepcopy(example(other)))
