"""The fetch and extraction errors are NewswatchErrors whose typed fields say what to do."""

from __future__ import annotations

from worker.articles.extract import ExtractionError
from worker.core.errors import NewswatchError, PermanentError, TransientError
from worker.http.errors import FetchError
from worker.http.netguard import BlockedAddressError
from worker.sources.feeds import FeedError


def test_fetch_error_fields() -> None:
    headers = {"Retry-After": "30"}
    err = FetchError(
        "http_status", "busy", url="https://x.test/", status=503, retry_after=30.0, headers=headers
    )
    assert isinstance(err, NewswatchError)
    assert (err.kind, err.permanent, err.retry_after, err.status, err.headers, err.outcome) == (
        "http_status",
        False,
        30.0,
        503,
        headers,
        "http_503",
    )
    assert str(err) == "busy"


def test_fetch_error_permanence_follows_kind_and_status() -> None:
    assert FetchError("http_status", "gone", status=410).permanent
    assert FetchError("blocked_address", "private").permanent
    assert not FetchError("timeout", "slow").permanent
    assert FetchError("timeout", "slow").retry_after is None


def test_the_input_errors_are_permanent_or_transient_by_family() -> None:
    assert isinstance(ExtractionError("x"), PermanentError)
    assert ExtractionError("x").kind == "extraction"
    blocked = BlockedAddressError("h.test", "10.0.0.1")
    assert isinstance(blocked, PermanentError) and blocked.kind == "blocked_address"
    # a body that is not a feed may be one at the next poll: counted, never disabling
    assert isinstance(FeedError("x"), TransientError) and FeedError("x").kind == "not_a_feed"
