"""Alert rendering: email parts and headers, webhook payload, chat formats."""

from __future__ import annotations

import email
import email.policy
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest

from worker.alerts.chat import (
    DISCORD_EMBED_TOTAL_MAX,
    TEAMS_PAYLOAD_MAX,
    _marked,
    chat_payload,
    discord_embed_chars,
    slack_escape,
)
from worker.alerts.mail import render_email
from worker.alerts.render import Alert, Segment, snippet_segments, webhook_payload
from worker.config import ChannelSpec
from worker.core.model import Article, Hit, WatchlistMatch

ROOT = Path(__file__).resolve().parents[2]
CHAT_SCHEMAS = ROOT / "tests" / "data" / "chat"
SENDER = "newswatch@example.org"

BODY = (
    "Baghdad - The Popular Mobilization Forces (PMF) said on Tuesday that its units "
    "would not withdraw from the western desert."
)


def make_alert(
    delivery_id: str = "dlv-1",
    watchlist: str = "iraq-militias",
    title: str = "PMF says it will not leave the western desert",
    url: str = "https://example.org/world/pmf",
    published: datetime | None = datetime(2024, 5, 1, 14, 3, tzinfo=UTC),
    snippet: str | None = None,
    highlights: tuple[tuple[int, int], ...] | None = None,
    other_sources: tuple[tuple[str, str], ...] = (),
    content_hash: str = "",
) -> Alert:
    article = Article(
        url=url,
        title=title,
        body=BODY,
        authors=("Jane Doe",),
        published=published,
        source="world-news",
        content_hash=content_hash or f"hash-{url}",
    )
    start = BODY.index("Popular")
    hits = (
        Hit("body", start, start + 27, "Popular Mobilization Forces", "PMF-full", "PMF"),
        Hit("body", BODY.index("(PMF") + 1, BODY.index("(PMF") + 4, "PMF", "PMF", "PMF"),
    )
    if snippet is None:
        snippet = BODY[14:]
        highlights = ((0, 27), (29, 32))
    match = WatchlistMatch(
        watchlist=watchlist,
        hits=hits,
        snippet=snippet,
        highlights=highlights or (),
        names=("Popular Mobilization Forces",),
    )
    return Alert(delivery_id, watchlist, article, match, other_sources)


def channel(tz: str = "Europe/Berlin") -> ChannelSpec:
    return ChannelSpec(
        name="security-desk", email=("desk@example.org", "ops@example.org"), timezone=tz
    )


def roundtrip(msg: EmailMessage) -> EmailMessage:
    """What a receiver parses: the message as bytes on the wire, parsed back."""
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


class Elements(HTMLParser):
    """Collects the tags and attributes a browser would build from the HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def elements(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


# --- email: one alert -------------------------------------------------------------


def test_single_alert_email_has_text_and_html_with_the_facts() -> None:
    msg = roundtrip(render_email([make_alert()], channel(), SENDER))

    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Subject"] == "[iraq-militias] PMF says it will not leave the western desert"
    assert msg["From"] == SENDER
    assert msg["To"] == "desk@example.org, ops@example.org"
    text, html = parts(msg)

    for body in (text, html):
        assert "iraq-militias" in body
        assert "Popular Mobilization Forces" in body
        assert "world-news" in body
        assert "Jane Doe" in body
        # 14:03 UTC is 16:03 in Berlin in May (CEST)
        assert "2024-05-01 16:03 CEST" in body
        assert "https://example.org/world/pmf" in body
    assert "**Popular Mobilization Forces** (**PMF**) said" in text
    assert "<mark" in html
    marked = [t for t, _ in elements(html).tags if t == "mark"]
    assert len(marked) == 2
    assert ("a", {"href": "https://example.org/world/pmf", "style": "color:#1a4d8f;"}) in elements(
        html
    ).tags


def test_headers_identify_the_delivery_and_the_list() -> None:
    msg = roundtrip(render_email([make_alert("dlv-42")], channel(), SENDER))
    assert msg["Message-ID"] == "<dlv-42@newswatch>"
    assert msg["List-Id"] == "<iraq-militias.newswatch>"
    assert msg["X-Newswatch-Delivery"] == "dlv-42"
    assert msg["Auto-Submitted"] == "auto-generated"


def test_message_id_is_stable_across_renders() -> None:
    first = render_email([make_alert("dlv-7")], channel(), SENDER)
    again = render_email([make_alert("dlv-7")], channel("UTC"), SENDER)
    assert first["Message-ID"] == again["Message-ID"] == "<dlv-7@newswatch>"


def test_odd_delivery_id_still_gives_a_valid_stable_message_id() -> None:
    one = render_email([make_alert("a b<c>@d")], channel(), SENDER)["Message-ID"]
    two = render_email([make_alert("a b<c>@d")], channel(), SENDER)["Message-ID"]
    assert one == two
    left = one.removeprefix("<").removesuffix("@newswatch>")
    assert left.isalnum()


def test_date_header_only_when_now_is_given() -> None:
    assert render_email([make_alert()], channel(), SENDER)["Date"] is None
    msg = render_email(
        [make_alert()], channel(), SENDER, now=datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
    )
    assert msg["Date"].datetime == datetime(2024, 5, 2, 8, 0, tzinfo=UTC)


def test_title_with_script_is_inert_in_html() -> None:
    evil = '<img src=x onerror=alert(1)> & "quoted" <script>alert(2)</script>'
    msg = roundtrip(render_email([make_alert(title=evil)], channel(), SENDER))
    text, html = parts(msg)
    found = elements(html)
    assert not [t for t, _ in found.tags if t in ("img", "script")]
    assert not any("onerror" in attrs for _, attrs in found.tags)
    # the reader still sees the title as written
    assert evil in "".join(found.text)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    # plain text is not HTML-escaped
    assert evil in text


def test_snippet_markup_is_escaped_but_highlights_stay() -> None:
    snippet = "<b>PMF</b> & friends"
    alert = make_alert(snippet=snippet, highlights=((3, 6),))
    _, html = parts(roundtrip(render_email([alert], channel(), SENDER)))
    assert "&lt;b&gt;<mark" in html
    assert ">PMF</mark>&lt;/b&gt; &amp; friends" in html


def test_only_http_links_become_hrefs() -> None:
    alert = make_alert(
        url="javascript:alert(1)",
        other_sources=(("wire", "https://wire.example.net/x"), ("bad", "data:text/html,hi")),
    )
    _, html = parts(roundtrip(render_email([alert], channel(), SENDER)))
    hrefs = [attrs.get("href") for tag, attrs in elements(html).tags if tag == "a"]
    assert hrefs == ["https://wire.example.net/x"]


@pytest.mark.parametrize(
    "title",
    [
        "Breaking\r\nBcc: victim@example.org",
        "Breaking\nX-Injected: yes",
        "Breaking\rSubject: other",
        "Breaking\u2028X-Injected: yes",
    ],
)
def test_newlines_in_title_cannot_create_headers(title: str) -> None:
    msg = render_email([make_alert(title=title)], channel(), SENDER)
    wire = msg.as_bytes()
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert parsed["X-Injected"] is None
    assert len(parsed.get_all("Subject")) == 1
    assert parsed["Subject"].startswith("[iraq-militias] Breaking ")
    # the envelope recipients the SMTP client would derive are unchanged
    assert parsed["To"] == "desk@example.org, ops@example.org"


def test_non_ascii_title_survives_the_subject_encoding() -> None:
    title = "Hashd al-Sha’abi: «ultimatum» — العراق"
    msg = roundtrip(render_email([make_alert(title=title)], channel(), SENDER))
    assert msg["Subject"] == f"[iraq-militias] {title}"


def test_long_subject_is_cut() -> None:
    msg = render_email([make_alert(title="word " * 200)], channel(), SENDER)
    assert len(str(msg["Subject"])) <= 200
    assert str(msg["Subject"]).endswith("…")


def test_timezone_and_unknown_published_time() -> None:
    tokyo = parts(roundtrip(render_email([make_alert()], channel("Asia/Tokyo"), SENDER)))[0]
    assert "2024-05-01 23:03 JST" in tokyo
    naive = make_alert(published=datetime(2024, 1, 1, 12, 0))  # naive is read as UTC
    assert "2024-01-01 13:00 CET" in parts(render_email([naive], channel(), SENDER))[0]
    unknown = parts(render_email([make_alert(published=None)], channel(), SENDER))
    assert "Published" not in unknown[0]


def test_subject_template_is_sandboxed_jinja() -> None:
    msg = render_email(
        [make_alert()], channel(), SENDER, subject_template="{{ watchlist|upper }}: {{ title }}"
    )
    assert msg["Subject"] == "IRAQ-MILITIAS: PMF says it will not leave the western desert"
    with pytest.raises(Exception, match=r"unsafe|attribute"):
        render_email(
            [make_alert()],
            channel(),
            SENDER,
            subject_template="{{ title.__class__.__mro__[1].__subclasses__() }}",
        )


def test_no_alerts_is_an_error() -> None:
    with pytest.raises(ValueError):
        render_email([], channel(), SENDER)


# --- email: digest ------------------------------------------------------------------


def digest_alerts() -> list[Alert]:
    return [
        make_alert("d-3", "zeta", "Third story", "https://example.org/3"),
        make_alert("d-1", "alpha", "First story", "https://example.org/1"),
        make_alert("d-2", "alpha", "Second story", "https://example.org/2"),
    ]


def test_digest_subject_and_grouping_by_watchlist() -> None:
    msg = roundtrip(render_email(digest_alerts(), channel(), SENDER))
    assert msg["Subject"] == "[newswatch] 3 alerts: alpha, zeta"
    text, html = parts(msg)
    # watchlists in name order, stories in the order given
    order = [
        text.index(s)
        for s in ("=== alpha (2)", "First story", "Second story", "=== zeta (1)", "Third story")
    ]
    assert order == sorted(order)
    headings = [t for t, _ in elements(html).tags if t == "h2"]
    assert len(headings) == 2
    assert msg["X-Newswatch-Delivery"] == "d-1 d-2 d-3"
    # several watchlists: the list is the channel
    assert msg["List-Id"] == "<security-desk.newswatch>"


def test_digest_message_id_is_deterministic_from_the_sorted_ids() -> None:
    alerts = digest_alerts()
    one = render_email(alerts, channel(), SENDER)["Message-ID"]
    two = render_email(list(reversed(alerts)), channel(), SENDER)["Message-ID"]
    other = render_email(alerts[:2], channel(), SENDER)["Message-ID"]
    assert one == two
    assert one != other
    assert one.startswith("<digest-") and one.endswith("@newswatch>")


def test_digest_merges_repeats_of_the_same_story() -> None:
    a = make_alert("d-1", other_sources=(("wire", "https://wire.example.net/1"),))
    b = replace(a, delivery_id="d-2", other_sources=(("agency", "https://agency.example.com/1"),))
    msg = render_email([a, b], channel(), SENDER)
    text, _ = parts(msg)
    assert text.count("PMF says it will not leave") == 1
    # both deliveries went out in this email, so both are named
    assert msg["X-Newswatch-Delivery"] == "d-1 d-2"
    assert msg["Message-ID"] == render_email([b, a], channel(), SENDER)["Message-ID"]
    assert msg["Message-ID"] != "<d-1@newswatch>"
    assert "wire.example.net" in text and "agency.example.com" in text


# --- snippets --------------------------------------------------------------------------


def test_overlapping_and_out_of_range_highlights_are_tamed() -> None:
    alert = make_alert(snippet="abcdefghij", highlights=((2, 5), (4, 7), (8, 99), (-3, 1), (6, 6)))
    segs = snippet_segments(alert.match, alert.article)
    assert [(s.text, s.hit) for s in segs] == [
        ("a", True),
        ("b", False),
        ("cdefg", True),
        ("h", False),
        ("ij", True),
    ]


def test_missing_snippet_is_cut_around_the_first_hit() -> None:
    alert = make_alert(snippet="", highlights=())
    segs = snippet_segments(alert.match, alert.article)
    assert [s.text for s in segs if s.hit] == ["Popular Mobilization Forces", "PMF"]
    assert "".join(s.text for s in segs) == BODY


# --- webhook payload ----------------------------------------------------------------


def payload_schema() -> dict:
    return json.loads((ROOT / "docs" / "webhook-payload.schema.json").read_text())


def test_webhook_payload_matches_its_schema_and_example() -> None:
    schema = payload_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    payload = webhook_payload(make_alert(other_sources=(("wire", "https://wire.example.net/1"),)))
    jsonschema.validate(payload, schema)
    example = json.loads((ROOT / "docs" / "webhook-payload.example.json").read_text())
    jsonschema.validate(example, schema)
    assert set(example) == set(payload)


def test_webhook_payload_content() -> None:
    payload = json.loads(json.dumps(webhook_payload(make_alert("dlv-9", title="A\nB"))))
    assert payload["type"] == "newswatch.match"
    assert payload["version"] == 1
    assert payload["id"] == "dlv-9"
    assert payload["article"]["title"] == "A B"
    assert payload["article"]["published"] == "2024-05-01T14:03:00Z"
    assert payload["match"]["names"] == ["Popular Mobilization Forces"]
    assert payload["match"]["highlights"] == [[0, 27], [29, 32]]
    snippet = payload["match"]["snippet"]
    assert snippet[29:32] == "PMF"
    assert payload["match"]["hits"][1]["text"] == "PMF"


def test_a_payload_missing_a_key_fails_the_schema() -> None:
    payload = webhook_payload(make_alert())
    del payload["article"]["url"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(payload, payload_schema())


# --- chat formats ------------------------------------------------------------------------


def chat_schema(fmt: str) -> dict:
    schema = json.loads((CHAT_SCHEMAS / f"{fmt}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def huge_alert() -> Alert:
    """Everything far over every platform's limits, full of markup characters."""
    snippet = ("<@everyone> *bold* [x](https://evil.example) & " * 400)[:20000]
    return make_alert(
        delivery_id="dlv-huge",
        title="T<>&*_" * 1000,
        snippet=snippet,
        highlights=tuple((i, i + 11) for i in range(0, 19000, 47)),
        other_sources=tuple((f"src{i}", f"https://s{i}.example.org/a") for i in range(80)),
    )


@pytest.mark.parametrize("fmt", ["slack", "teams", "discord"])
@pytest.mark.parametrize(
    "alert",
    [make_alert(), huge_alert(), make_alert(published=None)],
    ids=["normal", "huge", "undated"],
)
def test_chat_payloads_fit_the_platform_limits(fmt: str, alert: Alert) -> None:
    payload = chat_payload(alert, fmt)  # type: ignore[arg-type]
    jsonschema.validate(payload, chat_schema(fmt))
    if fmt == "discord":
        assert sum(discord_embed_chars(e) for e in payload["embeds"]) <= DISCORD_EMBED_TOTAL_MAX
    if fmt == "teams":
        assert len(json.dumps(payload).encode()) <= TEAMS_PAYLOAD_MAX


def test_the_schemas_can_fail() -> None:
    too_long = chat_payload(make_alert(), "discord")
    too_long["content"] = "x" * 2001
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(too_long, chat_schema("discord"))
    slack = chat_payload(make_alert(), "slack")
    slack["blocks"][0]["text"]["text"] = "x" * 151
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(slack, chat_schema("slack"))


def test_slack_escapes_control_sequences_and_bolds_hits() -> None:
    alert = make_alert(title="<!channel> alert", snippet="<!here> PMF & co", highlights=((8, 11),))
    payload = chat_payload(alert, "slack")
    section = payload["blocks"][1]["text"]["text"]
    assert section == "&lt;!here&gt; *PMF* &amp; co"
    assert payload["blocks"][0]["text"]["text"] == "<!channel> alert"  # plain_text is never parsed
    assert "<!channel>" not in payload["text"]
    button = payload["blocks"][-1]["elements"][0]
    assert button["url"] == "https://example.org/world/pmf"


def test_discord_never_pings_and_escapes_markdown() -> None:
    alert = make_alert(snippet="@everyone *PMF* said", highlights=((11, 14),))
    payload = chat_payload(alert, "discord")
    assert payload["allowed_mentions"] == {"parse": []}
    embed = payload["embeds"][0]
    assert embed["description"] == "@everyone \\***PMF**\\* said"
    assert embed["timestamp"] == "2024-05-01T14:03:00Z"
    assert embed["url"] == "https://example.org/world/pmf"


def test_truncation_never_splits_an_escape_or_leaves_a_highlight_open() -> None:
    payload = chat_payload(huge_alert(), "slack")
    text = payload["blocks"][1]["text"]["text"]
    assert len(text) <= 3000
    assert text.endswith("…")
    assert re.search(r"&(?!amp;|lt;|gt;)", text) is None
    # a long highlighted run cut at the limit is still closed
    segs = (Segment("&" * 10, False), Segment("<hit>" * 100, True))
    cut = _marked(segs, 60, slack_escape, ("*", "*"))
    assert len(cut) <= 60
    assert cut == "&amp;" * 10 + "*&lt;hit*…"


def test_teams_card_uses_reader_local_dates_and_open_url() -> None:
    payload = chat_payload(make_alert(), "teams")
    card = payload["attachments"][0]["content"]
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Source"] == "world-news"
    assert card["body"][3]["text"] == (
        "Published {{DATE(2024-05-01T14:03:00Z, SHORT)}} {{TIME(2024-05-01T14:03:00Z)}}"
    )
    assert card["actions"][0]["url"] == "https://example.org/world/pmf"
    assert "**Popular Mobilization Forces**" in card["body"][1]["text"]


@pytest.mark.parametrize("fmt", ["teams", "discord"])
def test_other_source_links_are_never_cut_in_half(fmt: str) -> None:
    payload = json.dumps(chat_payload(huge_alert(), fmt))  # type: ignore[arg-type]
    links = re.findall(r"\(https://s(\d+)\.example\.org/a\)", payload)
    assert 3 < len(links) < 80  # some fit, not all
    assert links == [str(i) for i in range(len(links))]
    assert re.search(r"\(https://s\d+\.exa[^)]*…", payload) is None


def test_unknown_chat_format() -> None:
    with pytest.raises(ValueError):
        chat_payload(make_alert(), "irc")  # type: ignore[arg-type]
