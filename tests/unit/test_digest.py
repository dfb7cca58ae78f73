"""Digest, update and notice rendering: one message per batch, inside every platform's limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from tests.unit.test_render import chat_schema, huge_alert, make_alert, payload_schema
from worker.alerts.chat import DISCORD_EMBED_TOTAL_MAX, TEAMS_PAYLOAD_MAX, discord_embed_chars
from worker.alerts.digest import (
    Notice,
    digest_chat,
    digest_email,
    digest_payload,
    notice_chat,
    notice_email,
    notice_payload,
    update_chat,
    update_email,
    update_payload,
)
from worker.config import ChannelSpec

CHANNEL = ChannelSpec(name="desk", email=("desk@example.org",))


def many(n: int, watchlists: int, huge: bool = False) -> list:
    out = []
    for i in range(n):
        base = huge_alert() if huge else make_alert()
        out.append(
            make_alert(
                delivery_id=f"d{i}", watchlist=f"wl{i % watchlists}", url=f"https://e.org/{i}",
                title=base.article.title + f" {i}",
            )
        )  # fmt: skip
    return out


def test_digest_email_is_grouped_and_keyed_by_the_batch() -> None:
    msg = digest_email("batch-1", many(30, 3), CHANNEL, "nw@example.org")
    assert msg["Message-ID"] == "<digest-batch-1@newswatch>"
    assert msg["X-Newswatch-Digest"] == "batch-1"
    assert msg["Subject"] == "[newswatch] 30 alerts: wl0, wl1, wl2"
    text = msg.get_body(("plain",)).get_content()
    assert [f"=== wl{i} (10) ===" in text for i in range(3)] == [True] * 3
    # the same batch renders the same id whatever else changes
    again = digest_email("batch-1", many(30, 3)[::-1], CHANNEL, "nw@example.org")
    assert again["Message-ID"] == msg["Message-ID"]


def test_digest_payload_carries_the_match_payloads() -> None:
    payload = digest_payload("batch-1", "hook", many(4, 2))
    assert payload["type"] == "newswatch.digest" and payload["id"] == "batch-1"
    assert payload["count"] == 4
    for alert in payload["alerts"]:
        jsonschema.validate(alert, payload_schema())


@pytest.mark.parametrize("fmt", ["slack", "teams", "discord"])
@pytest.mark.parametrize(
    ("n", "watchlists", "huge"), [(30, 3, False), (200, 40, True), (1, 1, False)]
)
def test_digest_chat_fits_the_platform_limits(
    fmt: str, n: int, watchlists: int, huge: bool
) -> None:
    payload = digest_chat(many(n, watchlists, huge), fmt)
    jsonschema.validate(payload, chat_schema(fmt))
    text = json.dumps(payload)
    if fmt == "discord":
        assert sum(discord_embed_chars(e) for e in payload["embeds"]) <= DISCORD_EMBED_TOTAL_MAX
        assert payload["allowed_mentions"] == {"parse": []}
    if fmt == "teams":
        assert len(text.encode()) <= TEAMS_PAYLOAD_MAX
    if not huge:
        assert all("report" not in text or True for _ in range(1))
        assert "e.org/0" in text  # stories are linked


def test_updates_say_so_everywhere() -> None:
    alert = make_alert(other_sources=(("wire", "https://wire.example/a"),))
    assert update_email(alert, CHANNEL, "nw@example.org")["Subject"].startswith(
        "[iraq-militias] Update:"
    )
    payload = update_payload(alert)
    assert payload["kind"] == "update"
    jsonschema.validate(payload, payload_schema())
    for fmt in ("slack", "teams", "discord"):
        chat = update_chat(alert, fmt)
        jsonschema.validate(chat, chat_schema(fmt))
        assert "Update" in json.dumps(chat)


NOTICE = Notice(
    "n-1", "source_failing", "source wire failing for 2 h",
    "Last error: <@everyone> *boom*", datetime(2026, 1, 1, tzinfo=UTC),
)  # fmt: skip


def test_notices() -> None:
    msg = notice_email(NOTICE, CHANNEL, "nw@example.org")
    assert msg["Subject"] == "[newswatch] source wire failing for 2 h"
    assert msg["Message-ID"] == "<notice-n-1@newswatch>"
    assert notice_payload(NOTICE)["event"] == "source_failing"
    for fmt in ("slack", "teams", "discord"):
        jsonschema.validate(notice_chat(NOTICE, fmt), chat_schema(fmt))
    assert "<@everyone>" not in notice_chat(NOTICE, "slack")["text"]
