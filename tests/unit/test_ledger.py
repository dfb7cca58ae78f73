"""How the ledger names an error: its class on the row, and a kind that tells a bug apart."""

from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from worker.articles.extract import ExtractionError
from worker.http.errors import FetchError
from worker.tracking.ledger import describe, error_kind


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (FetchError("timeout", "read timed out"), "timeout", "FetchError: read timed out"),
        (ExtractionError("no article text"), "extraction", "ExtractionError: no article text"),
        # a bare ValueError is a bug, not bad input: our input errors have their own classes
        (ValueError("year 0 is out of range"), "internal", "ValueError: year 0 is out of range"),
        (KeyError("lead"), "internal", "KeyError: 'lead'"),
        (OverflowError(), "internal", "OverflowError"),
        (SoftTimeLimitExceeded(), "time_limit", "SoftTimeLimitExceeded: over the soft time limit"),
    ],
)
def test_kind_and_text(exc: Exception, kind: str, text: str) -> None:
    assert (error_kind(exc), describe(exc)) == (kind, text)


def test_the_recorded_text_is_bounded() -> None:
    assert len(describe(RuntimeError("x" * 10_000))) == 2000
