"""Webhook signing and delivery against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.helpers import webhook_receiver as receiver_helpers
from tests.helpers.webhook_receiver import WebhookReceiver, closed_port, post_with_requests
from worker.alerts.chat import chat_payload
from worker.alerts.render import Alert, webhook_payload
from worker.alerts.webhook import (
    MAX_RETRY_AFTER,
    PostError,
    build_request,
    deliver_webhook,
    generate_secret,
    parse_retry_after,
    secret_key,
    sign,
)
from worker.core.model import Article, Hit, WatchlistMatch

# the helper's fixtures, used by name below
webhook_receiver = receiver_helpers.webhook_receiver
make_webhook_receiver = receiver_helpers.make_webhook_receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def alert(delivery_id: str = "dlv-1") -> Alert:
    body = "The Popular Mobilization Forces said on Tuesday it stays. «Ça va» — العراق"
    article = Article(
        url="https://example.org/a",
        title="PMF <b>stays</b>",
        body=body,
        published=datetime(2024, 5, 1, 14, 3, tzinfo=UTC),
        source="world-news",
    )
    match = WatchlistMatch(
        watchlist="iraq-militias",
        hits=(Hit("body", 4, 31, "Popular Mobilization Forces", "PMF", "PMF"),),
        snippet=body,
        highlights=((4, 31),),
    )
    return Alert(delivery_id, "iraq-militias", article, match)


def now() -> int:
    # The reference verifier rejects timestamps more than 5 minutes from its clock.
    return int(time.time())


# --- signing ---------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_reference() -> None:
    body = b'{"hello":"world"}'
    ts = 1_700_000_000
    expected = Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(ts, UTC), body.decode())
    assert sign(SECRET, "msg_1", ts, body) == expected
    # and by hand, from the spec: HMAC-SHA256 over "{id}.{ts}.{body}" keyed by the decoded secret
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert sign(SECRET, "msg_1", ts, body) == "v1," + base64.b64encode(mac).decode()


def test_secret_without_prefix_is_read_like_the_reference_library() -> None:
    bare = SECRET.removeprefix("whsec_")
    assert secret_key(bare) == secret_key(SECRET)
    body, headers = build_request({"a": 1}, "dlv-1", bare, now())
    Webhook(bare).verify(body, headers)


@pytest.mark.parametrize("bad", ["not base64!", "whsec_***", "whsec_", ""])
def test_unusable_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        sign(bad, "msg_1", 1, b"{}")


def test_generated_secrets_verify() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(secret_key(secret)) == 32
    body, headers = build_request({"a": 1}, "dlv-1", secret, now())
    assert Webhook(secret).verify(body, headers) == {"a": 1}


def test_request_headers_and_body() -> None:
    ts = now()
    payload = webhook_payload(alert("dlv-77"))
    body, headers = build_request(payload, "dlv-77", SECRET, ts)
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == "dlv-77"
    assert headers["webhook-timestamp"] == str(ts)
    assert headers["webhook-signature"].startswith("v1,")
    assert json.loads(body) == payload
    assert "«Ça va»".encode() in body  # UTF-8, not \\u escapes
    # deterministic: a retry sends the same bytes, signed afresh with its own timestamp
    assert build_request(payload, "dlv-77", SECRET, ts)[0] == body


def test_no_secret_no_signature() -> None:
    _, headers = build_request({"a": 1}, "dlv-1", None, now())
    assert "webhook-signature" not in headers
    assert headers["webhook-id"] == "dlv-1"


def test_rotation_signs_with_every_secret() -> None:
    old, new = generate_secret(), generate_secret()
    body, headers = build_request({"a": 1}, "dlv-1", [old, new], now())
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


def test_bad_message_id_is_refused() -> None:
    with pytest.raises(ValueError):
        build_request({}, "a b", SECRET, now())


# --- delivery to a real receiver ---------------------------------------------------


def test_delivered_payload_verifies_at_the_receiver(webhook_receiver: WebhookReceiver) -> None:
    payload = webhook_payload(alert("dlv-1"))
    body, headers = build_request(payload, "dlv-1", SECRET, now())

    outcome = deliver_webhook(post_with_requests, webhook_receiver.url, body, headers)

    assert outcome.ok and outcome.status == 200 and not outcome.permanent
    [got] = webhook_receiver.requests
    assert got.method == "POST" and got.path == "/hook"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == "dlv-1"
    assert Webhook(SECRET).verify(got.body, got.headers) == payload


def test_tampered_body_fails_verification(webhook_receiver: WebhookReceiver) -> None:
    body, headers = build_request(webhook_payload(alert()), "dlv-1", SECRET, now())
    tampered = body.replace(b"iraq-militias", b"iraq-militiaz")
    deliver_webhook(post_with_requests, webhook_receiver.url, tampered, headers)
    [got] = webhook_receiver.requests
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(got.body, got.headers)


def test_tampered_timestamp_fails_verification(webhook_receiver: WebhookReceiver) -> None:
    body, headers = build_request(webhook_payload(alert()), "dlv-1", SECRET, now())
    replayed = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}
    deliver_webhook(post_with_requests, webhook_receiver.url, body, replayed)
    [got] = webhook_receiver.requests
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(got.body, got.headers)


def test_wrong_secret_fails_verification(webhook_receiver: WebhookReceiver) -> None:
    body, headers = build_request(webhook_payload(alert()), "dlv-1", SECRET, now())
    deliver_webhook(post_with_requests, webhook_receiver.url, body, headers)
    [got] = webhook_receiver.requests
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(got.body, got.headers)


def test_server_errors_are_temporary_then_succeed(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.fail(2, status=500)
    body, headers = build_request({"a": 1}, "dlv-1", SECRET, now())
    outcomes = [
        deliver_webhook(post_with_requests, webhook_receiver.url, body, headers) for _ in range(3)
    ]
    assert [(o.ok, o.status, o.permanent, o.disable) for o in outcomes] == [
        (False, 500, False, False),
        (False, 500, False, False),
        (True, 200, False, False),
    ]
    # every attempt carried the same id, so the receiver can drop repeats
    assert {r.headers["webhook-id"] for r in webhook_receiver.requests} == {"dlv-1"}


def test_gone_disables_the_endpoint(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.always(410)
    body, headers = build_request({"a": 1}, "dlv-1", SECRET, now())
    outcome = deliver_webhook(post_with_requests, webhook_receiver.url, body, headers)
    assert (outcome.ok, outcome.status, outcome.disable, outcome.permanent) == (
        False,
        410,
        True,
        True,
    )


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds(webhook_receiver: WebhookReceiver, status: int) -> None:
    webhook_receiver.fail(1, status=status, headers={"Retry-After": "120"})
    body, headers = build_request({"a": 1}, "dlv-1", SECRET, now())
    outcome = deliver_webhook(post_with_requests, webhook_receiver.url, body, headers)
    assert (outcome.ok, outcome.status, outcome.permanent, outcome.retry_after) == (
        False,
        status,
        False,
        120.0,
    )


def test_retry_after_http_date(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.fail(1, status=429, headers={"Retry-After": "Wed, 01 May 2024 14:05:00 GMT"})
    body, headers = build_request({"a": 1}, "dlv-1", SECRET, now())
    at = datetime(2024, 5, 1, 14, 3, 30, tzinfo=UTC).timestamp()
    outcome = deliver_webhook(post_with_requests, webhook_receiver.url, body, headers, now=at)
    assert outcome.retry_after == 90.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("30", 30.0),
        (" 30 ", 30.0),
        ("99999999", MAX_RETRY_AFTER),
        ("Wed, 01 May 2024 14:00:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    at = datetime(2024, 5, 1, 14, 3, 30, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, at) == expected


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (401, True), (404, True), (413, True), (408, False), (409, False), (502, False)],
)
def test_client_errors_are_permanent_others_temporary(
    webhook_receiver: WebhookReceiver, status: int, permanent: bool
) -> None:
    webhook_receiver.always(status)
    body, headers = build_request({"a": 1}, "dlv-1", None, now())
    outcome = deliver_webhook(post_with_requests, webhook_receiver.url, body, headers)
    assert (outcome.ok, outcome.status, outcome.permanent, outcome.disable) == (
        False,
        status,
        permanent,
        False,
    )


def test_redirect_is_not_followed(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.always(301, headers={"Location": "http://127.0.0.1:1/elsewhere"})
    body, headers = build_request({"a": 1}, "dlv-1", None, now())
    outcome = deliver_webhook(post_with_requests, webhook_receiver.url, body, headers)
    assert (outcome.ok, outcome.status, outcome.permanent) == (False, 301, True)
    # where it points, as scheme and host only: a redirect target may carry a token too
    assert "redirect to http://127.0.0.1:1" in outcome.error
    assert "elsewhere" not in outcome.error
    assert len(webhook_receiver.requests) == 1


def test_receiver_down_is_temporary(webhook_receiver: WebhookReceiver) -> None:
    body, headers = build_request({"a": 1}, "dlv-1", SECRET, now())
    webhook_receiver.stop()
    down = deliver_webhook(post_with_requests, webhook_receiver.url, body, headers)
    assert (down.ok, down.status, down.permanent) == (False, None, False)
    assert "ConnectionError" in down.error

    webhook_receiver.start()  # same port
    assert deliver_webhook(post_with_requests, webhook_receiver.url, body, headers).ok


def test_nothing_listening_is_temporary() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    outcome = deliver_webhook(post_with_requests, url, b"{}", {"webhook-id": "x"})
    assert (outcome.ok, outcome.status, outcome.permanent) == (False, None, False)


class FakeFetchError(PostError):
    """A fetch failure as the seam raises it (see `post_via_fetcher`)."""

    def __init__(self, kind: str, message: str, status: int | None, retry_after: float | None):
        permanent = status in (404, 410)
        super().__init__(
            message, kind=kind, permanent=permanent, status=status, retry_after=retry_after
        )
        self.message = message


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FakeFetchError("http", "gone", 410, None), (410, True, True, None)),
        (FakeFetchError("http", "slow down", 429, 12.0), (429, False, False, 12.0)),
        (FakeFetchError("http", "oops", 500, None), (500, False, False, None)),
        (FakeFetchError("blocked", "private address", None, None), (None, False, False, None)),
    ],
)
def test_fetch_errors_from_the_seam_are_classified(
    error: FakeFetchError, expected: tuple[int | None, bool, bool, float | None]
) -> None:
    def post(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str]]:
        raise error

    outcome = deliver_webhook(post, "http://127.0.0.1/hook", b"{}", {})
    assert not outcome.ok
    assert (outcome.status, outcome.permanent, outcome.disable, outcome.retry_after) == expected
    assert error.message in outcome.error


def test_permanent_transport_error_from_the_seam() -> None:
    error = FakeFetchError("blocked", "address not allowed", None, None)
    error.permanent = True

    def post(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str]]:
        raise error

    outcome = deliver_webhook(post, "http://10.0.0.1/hook", b"{}", {})
    assert (outcome.ok, outcome.permanent) == (False, True)
    assert outcome.error.startswith("blocked:")


@pytest.mark.parametrize("fmt", ["slack", "teams", "discord"])
def test_chat_payloads_post_as_json(webhook_receiver: WebhookReceiver, fmt: str) -> None:
    payload = chat_payload(alert(), fmt)  # type: ignore[arg-type]
    body, headers = build_request(payload, "dlv-1", None, now())
    assert deliver_webhook(post_with_requests, webhook_receiver.url, body, headers).ok
    [got] = webhook_receiver.requests
    assert json.loads(got.body) == payload
