"""Webhook sender: Standard Webhooks signing and delivery outcome classification.

The HTTP transport is injected (`post`), so production sends through
newswatch's guarded fetcher (address checks, timeouts, size limits) and the
tests through a plain `requests` call against a localhost receiver. This module
only builds the request and decides what a response means for the retry policy:
one `SendOutcome`, from the answer or from the typed error the seam raised.

Signing follows https://www.standardwebhooks.com/ (the scheme Svix, Clerk and
others use): headers `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
Receivers verify with any Standard Webhooks library, e.g.
`standardwebhooks.Webhook(secret).verify(body, headers)`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from worker.alerts.outcome import SendOutcome
from worker.core import httpdate
from worker.core.errors import InputError, NewswatchError
from worker.core.redact import redact_text, redact_url
from worker.http.errors import FetchError
from worker.http.fetcher import Fetcher

SECRET_PREFIX = "whsec_"
# a receiver cannot park a delivery for longer than a day (worker.core.httpdate)
MAX_RETRY_AFTER = httpdate.DELIVERY_RETRY_AFTER_CAP

# (url, body, headers) -> (status, response headers). May raise on transport errors.
PostFn = Callable[[str, bytes, Mapping[str, str]], tuple[int, Mapping[str, str]]]

# 4xx answers that say "this request will never be accepted as sent"; other
# 4xx (408 timeout, 409 conflict, 425 too early, 429 rate limit) may pass later.
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 405, 406, 411, 413, 414, 415, 422})


def secret_key(secret: str) -> bytes:
    """The HMAC key for a Standard Webhooks secret.

    `whsec_<base64>`: the key is the base64-decoded part after the prefix.
    Without the prefix the whole string is base64-decoded -- exactly what the
    reference `standardwebhooks` libraries do, so the same configured string
    verifies on both sides. A string that is not base64 is refused (InputError)
    rather than silently used as raw bytes no receiver library would reproduce.
    """
    raw = secret.strip()
    if raw.startswith(SECRET_PREFIX):
        raw = raw[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(
            "a webhook secret must be 'whsec_' followed by base64 "
            "(create one with `worker.alerts.webhook.generate_secret()`)"
        ) from None
    if not key:
        raise InputError("empty webhook secret")
    return key


def generate_secret(nbytes: int = 32) -> str:
    """A fresh `whsec_...` secret (Standard Webhooks recommends 24 to 64 bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` over "{msg_id}.{timestamp}.{body}"."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; the same payload always gives the same bytes."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def build_request(
    alert_payload: Mapping[str, Any],
    msg_id: str,
    secret: str | Sequence[str] | None,
    now: int,
) -> tuple[bytes, dict[str, str]]:
    """Body and headers for one delivery attempt.

    `msg_id` must be the same on every retry of a delivery (receivers dedupe on
    it); `now` is the attempt's Unix time. Several secrets (during a rotation)
    give several space-separated signatures, any of which verifies.
    """
    if not msg_id or any(c in msg_id for c in " \r\n,"):
        raise ValueError(f"unusable webhook id {msg_id!r}")
    body = encode_payload(alert_payload)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now)),
    }
    secret_list = [secret] if isinstance(secret, str) else list(secret or ())
    if secret_list:
        headers["webhook-signature"] = " ".join(
            sign(s, msg_id, int(now), body) for s in secret_list
        )
    return body, headers


class PostError(NewswatchError):
    """What a `PostFn` raises when the POST failed: `status` and `headers` are set when
    the receiver answered with an error status, None when no answer arrived."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        permanent: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, kind=kind, permanent=permanent, retry_after=retry_after)
        self.status = status
        self.headers = headers or {}


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from `now` (Unix time): delay-seconds or an HTTP date
    (RFC 9110), at most MAX_RETRY_AFTER; None when absent or unreadable."""
    return httpdate.retry_after(value, datetime.fromtimestamp(now, UTC), MAX_RETRY_AFTER)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers.items() if k.lower() == name), None)


def outcome_for_status(status: int, headers: Mapping[str, str], now: float) -> SendOutcome:
    """What an HTTP answer means for this delivery."""
    if 200 <= status < 300:
        return SendOutcome.sent(status)
    retry_after = parse_retry_after(_header(headers, "retry-after"), now)
    if status == 410:
        return SendOutcome.failed("410 Gone", status=status, disable=True)
    if 300 <= status < 400:
        # Redirects are not followed for signed POSTs: the URL in the config is wrong.
        # only the host: the target of a redirect may carry a token as much as the URL
        location = _header(headers, "location") or ""
        where = redact_url(location) if "://" in location else "a relative location"
        return SendOutcome.failed(f"{status} redirect to {where}", status=status, permanent=True)
    if status in PERMANENT_STATUSES:
        return SendOutcome.failed(f"HTTP {status}", status=status, permanent=True)
    return SendOutcome.failed(f"HTTP {status}", status=status, retry_after=retry_after)


def _outcome_for_error(exc: NewswatchError, now: float, url: str) -> SendOutcome:
    if isinstance(exc, PostError) and exc.status is not None:
        outcome = outcome_for_status(exc.status, exc.headers, now)
        retry_after = httpdate.bounded(exc.retry_after, MAX_RETRY_AFTER)
        if outcome.retry_after is None and retry_after is not None:
            outcome = replace(outcome, retry_after=retry_after)
        return replace(outcome, error=redact_text(f"{outcome.error}: {exc}", [url]))
    # transport errors quote the URL (requests: "... with url: /services/T0/B0/X"): scrubbed
    outcome = SendOutcome.from_error(exc)
    return replace(outcome, error=redact_text(outcome.error or "", [url]))


def deliver_webhook(
    post: PostFn,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
) -> SendOutcome:
    """POST once and classify the result. Never raises for delivery failures.

    Errors become data here because the caller's only decision is "done, retry
    (when), or give up (and maybe disable the endpoint)"; any exception from the
    transport is such a failure (`post` is a seam with many implementations).
    """
    clock = time.time() if now is None else now
    try:
        status, resp_headers = post(url, body, headers)
    except NewswatchError as exc:  # classified and returned as data, not swallowed
        return _outcome_for_error(exc, clock, url)
    except Exception as exc:  # any other transport (`post` is a seam): may pass later
        return _outcome_for_error(NewswatchError(str(exc), kind=type(exc).__name__), clock, url)
    return outcome_for_status(status, resp_headers, clock)


def post_via_fetcher(fetcher: Fetcher) -> PostFn:
    """Adapt newswatch's `Fetcher.post_json(url, body, headers) -> FetchResult` to `PostFn`;
    its FetchError (an error status or no answer) becomes a PostError."""

    def post(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str]]:
        try:
            result = fetcher.post_json(url, body, headers)
        except FetchError as exc:
            raise PostError(
                str(exc),
                kind=exc.kind,
                permanent=exc.permanent,
                retry_after=exc.retry_after,
                status=exc.status,
                headers=exc.headers,
            ) from exc
        return result.status, result.headers

    return post
