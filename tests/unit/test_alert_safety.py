"""Rendering hostile alerts (issue 10): dates at the ends of the calendar in every zone,
invisible format characters, and URLs in messages (scheme and host only)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

import pytest

from tests.unit.test_render import SENDER, channel, make_alert, parts, roundtrip
from worker.alerts.chat import chat_payload
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
from worker.alerts.display import neutralise, neutralise_spans, percent_encode_format
from worker.alerts.mail import render_email
from worker.alerts.render import Alert, format_time, iso_time
from worker.alerts.render import webhook_payload as payload
from worker.core.model import Hit, WatchlistMatch
from worker.core.redact import redact_text, redact_url

# --- dates: every representable datetime, every zone -------------------------------------

EDGES = [
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),  # the case: "9999-12-31 23:59:59 GMT"
    datetime(9999, 12, 31, 23, 59, 59, 999999),  # naive: taken as UTC
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(1, 1, 1),
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),  # before year 1 in UTC
    datetime(9999, 12, 31, 23, 0, tzinfo=timezone(-timedelta(hours=14))),  # after 9999 in UTC
    datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=23, minutes=59))),
    datetime(1970, 1, 1, tzinfo=UTC) - timedelta(days=1),  # a negative epoch
]
# east and west of UTC, the extremes of both (Kiritimati +14, Niue/Pago Pago -11), LMT zones
ZONES = ["Asia/Tokyo", "Pacific/Kiritimati", "America/Los_Angeles", "Pacific/Pago_Pago", "UTC"]


def every_rendering(alert: Alert, tz: str) -> list[Any]:
    ch = channel(tz)
    notice = Notice("n-1", "delivery_dead", "t", "x", alert.article.published or datetime.now(UTC))
    return [
        render_email([alert], ch, SENDER),
        render_email([alert, replace(alert, delivery_id="d-2")], ch, SENDER),
        payload(alert),
        *(chat_payload(alert, fmt) for fmt in ("slack", "teams", "discord")),
        digest_email("b-1", [alert], ch, SENDER),
        digest_payload("b-1", "desk", [alert]),
        *(digest_chat([alert], fmt) for fmt in ("slack", "teams", "discord")),
        update_email(alert, ch, SENDER),
        update_payload(alert),
        *(update_chat(alert, fmt) for fmt in ("slack", "teams", "discord")),
        notice_email(notice, ch, SENDER),
        notice_payload(notice),
        *(notice_chat(notice, fmt) for fmt in ("slack", "teams", "discord")),
    ]


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("moment", EDGES, ids=lambda d: d.isoformat())
def test_dates_at_the_ends_of_the_calendar_render_in_every_zone(moment: datetime, tz: str) -> None:
    alert = make_alert(published=moment)
    for out in every_rendering(alert, tz):
        if isinstance(out, EmailMessage):
            out.as_bytes()  # the whole message serializes, headers and both parts
        else:
            json.dumps(out)
    assert len(format_time(moment, tz)) >= len("0001-01-01 00:00 UTC")
    assert iso_time(moment)


def test_the_far_future_east_of_utc_is_shown_in_utc_and_true() -> None:
    moment = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert format_time(moment, "Asia/Tokyo") == "9999-12-31 23:59 UTC"
    assert format_time(moment, "America/Los_Angeles") == "9999-12-31 15:59 PST"
    text, html = parts(
        roundtrip(render_email([make_alert(published=moment)], channel("Asia/Tokyo"), SENDER))
    )
    assert "Published: 9999-12-31 23:59 UTC" in text and "9999-12-31 23:59 UTC" in html
    assert payload(make_alert(published=moment))["article"]["published"] == "9999-12-31T23:59:59Z"
    # years before 1000 keep four digits (glibc's strftime would print "1-01-01")
    assert format_time(datetime(5, 3, 1, 12, 0, tzinfo=UTC), "UTC") == "0005-03-01 12:00 UTC"


# --- invisible format characters ----------------------------------------------------------

BIDI_AND_INVISIBLE = (
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings and overrides
    "\u2066\u2067\u2068\u2069"  # isolates
    "\u200b\u200e\u200f"  # zero-width space, LRM, RLM
    "\u2028\u2029"  # line and paragraph separators
    "\ufeff\u00ad\u2060\u061c\u180e\ufff9"  # BOM, soft hyphen, word joiner, ALM, ... (Cf)
)


def test_neutralise_takes_out_bidi_zero_width_and_other_format_characters() -> None:
    assert neutralise("Invoice \u202egpj.exe") == "Invoice gpj.exe"
    assert neutralise("a\u2066b\u2069c\u200bd\ufeffe") == "abcde"
    assert neutralise("one\u2028two\u2029three") == "one two three"
    assert neutralise("Pay\u200dPal and Pay\u200cPal") == "PayPal and PayPal"
    for ch in BIDI_AND_INVISIBLE:
        assert neutralise(f"x{ch}y") in ("xy", "x y")
    assert neutralise("plain ascii") == "plain ascii"


def test_neutralise_keeps_joiners_where_writing_needs_them() -> None:
    persian = "می\u200cخواهم"  # ZWNJ inside a Persian word
    assert neutralise(persian) == persian
    hindi = "क्\u200dष"  # ZWJ in a Devanagari conjunct
    assert neutralise(hindi) == hindi
    for emoji in ("👩\u200d💻", "👨🏽\u200d🚀", "❤️\u200d🔥"):
        assert neutralise(emoji) == emoji
    scotland = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    assert neutralise(scotland) == scotland
    assert neutralise("hidden\U000e0068\U000e0069") == "hidden"  # tags outside a flag: out


def test_neutralise_moves_highlight_spans_with_the_text() -> None:
    text, spans = neutralise_spans("\u202eab\u200bcd\u200be", [(1, 3), (4, 6), (0, 8)])
    assert text == "abcde"
    assert [text[s:e] for s, e in spans] == ["ab", "cd", "abcde"]
    assert percent_encode_format("https://x.org/a\u202eb") == "https://x.org/a%E2%80%AEb"


def spoof_alert() -> Alert:
    title = "\u202eMinister\u2066 resigns\u2069\u200b today\ufeff"
    body = "Minister \u202eZ\u200bY\u2028X said the Minister would resign."
    base = make_alert(title=title, url="https://example.org/a\u202eb")
    start = body.index("Minister", 5)
    match = WatchlistMatch(
        watchlist="ministers\u200b",
        hits=(Hit("body", start, start + 8, "Minister\u200d", "Minister", "Minister\u202e"),),
        snippet=body,
        highlights=((start, start + 8),),
        names=("Minister\u2067",),
    )
    article = replace(base.article, body=body, lead="\u202elead", source="wire\u200b",
                      authors=("Ann\u202e",), tags=("t\u2066",))  # fmt: skip
    return Alert(
        "d-1", "ministers\u200b", article, match, (("other\u202e", "https://o.org/\u200b"),)
    )


def strings(value: Any) -> list[str]:
    if isinstance(value, EmailMessage):
        msg = roundtrip(value)
        bodies = [msg.get_body(preferencelist=(kind,)) for kind in ("plain", "html")]
        texts = [b.get_content() for b in bodies if b is not None]
        return [*texts, *(str(v) for _, v in msg.items())]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def test_no_rendered_output_carries_a_format_character() -> None:
    alert = spoof_alert()
    for out in every_rendering(alert, "Europe/Berlin"):
        for s in strings(out):
            found = [hex(ord(c)) for c in s if c in BIDI_AND_INVISIBLE]
            assert not found, (found, s[:200])
    msg = roundtrip(render_email([alert], channel(), SENDER))
    assert msg["Subject"] == "[ministers] Minister resigns today"
    # the highlight still covers the watched word after the characters before it went
    snippet = payload(alert)["match"]
    ((start, end),) = snippet["highlights"]
    assert snippet["snippet"][start:end] == "Minister"
    assert "**Minister**" in parts(msg)[0]
    notice = Notice("n", "source_failing", "source \u202ewire", "err\u2066or", datetime.now(UTC))
    assert notice_payload(notice)["title"] == "source wire"


# --- URLs in messages ---------------------------------------------------------------------

TOKEN = "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"https://hooks.slack.com/services/{TOKEN}", "https://hooks.slack.com"),
        ("https://user:pass@example.org:8443/p?token=s3cret#x", "https://example.org:8443"),
        (f"post http://127.0.0.1:9/services/{TOKEN}: refused", "post http://127.0.0.1:9: refused"),
        (
            "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
            f"/services/{TOKEN} (Caused by NewConnectionError('refused'))",
            "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
            "(path) (Caused by NewConnectionError('refused'))",
        ),
        (f"see (https://discord.com/api/webhooks/1/{TOKEN}).", "see (https://discord.com)."),
        ("https://[::1]:8080/x/y", "https://[::1]:8080"),
        ("ok: no url at all", "ok: no url at all"),
        (f"two: https://a.org/{TOKEN} and ftp://b.org/{TOKEN}", "two: https://a.org and ftp://b.org"),
    ],
)  # fmt: skip
def test_urls_in_messages_are_cut_to_scheme_and_host(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # idempotent


def test_redact_url_never_shows_credentials_or_path() -> None:
    url = "https://outlook.office.com:443/webhook/abc@def/IncomingWebhook/123/456"
    assert redact_url(url) == "https://outlook.office.com:443"
    assert redact_url("https://a:b@c@evil.example/x") == "https://evil.example"
    assert "secret-path" not in redact_text("x" * 40 + "://secret-host/secret-path")


def test_pieces_of_a_known_url_are_redacted_without_its_syntax() -> None:
    from urllib.parse import urlsplit

    url = f"http://u:p4ss{TOKEN}@127.0.0.1:8080/hook"  # a "/" in the password: unparseable
    with pytest.raises(ValueError) as err:
        urlsplit(url).port  # noqa: B018 - what the fetcher's URL check does
    assert "p4ss" in str(err.value)  # the parser quotes the password, no URL around it
    scrubbed = redact_text(f"invalid_url: {err.value}", [url])
    assert "p4ss" not in scrubbed and "XXXX" not in scrubbed
    # the host stays readable
    assert redact_text("refused by 127.0.0.1", [f"http://127.0.0.1:9/{TOKEN}"]) == (
        "refused by 127.0.0.1"
    )
