"""What one send attempt came to, as data: the one outcome type of the alerts stage.

Senders raise or return a NewswatchError (typed: kind, permanent, retry_after) for a
failure they understand; it becomes a `SendOutcome` once, here. An exception of any
other type escaping a stage is a bug: `failure_outcome` logs its traceback and
records it (URLs scrubbed) so the delivery fails alone instead of the worker.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass

from worker.core.errors import NewswatchError
from worker.core.redact import redact_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendOutcome:
    ok: bool
    status: int | None = None
    error: str | None = None
    permanent: bool = False  # retrying cannot help (bad address, 410 Gone, channel removed)
    retry_after: float | None = None
    disable: bool = False  # the receiver asked us to stop (410 Gone): switch the endpoint off
    stage: str | None = None  # where a failure happened: load | render | send | ...
    error_class: str | None = None  # the exception class, when an exception was the failure

    @classmethod
    def sent(cls, status: int | None = None) -> SendOutcome:
        return cls(True, status=status)

    @classmethod
    def failed(
        cls,
        error: str,
        *,
        status: int | None = None,
        permanent: bool = False,
        retry_after: float | None = None,
        disable: bool = False,
        stage: str | None = "send",
    ) -> SendOutcome:
        return cls(
            False,
            status=status,
            error=error,
            permanent=permanent or disable,
            retry_after=retry_after,
            disable=disable,
            stage=stage,
        )

    @classmethod
    def from_error(
        cls, exc: NewswatchError, *, status: int | None = None, stage: str = "send"
    ) -> SendOutcome:
        """A failure a sender understood: its kind names it, its fields decide the retry."""
        return cls.failed(
            f"{exc.kind}: {exc}",
            status=status,
            permanent=exc.permanent,
            retry_after=exc.retry_after,
            stage=stage,
        )


def failure_outcome(stage: str, exc: BaseException, url: str | None = None) -> SendOutcome:
    """An exception that escaped a stage of one delivery, as a failed outcome.

    The traceback is logged (URLs scrubbed; `url`, the channel's, also in pieces)
    because an unexpected exception is a bug to fix; the outcome carries the
    one-line reason the delivery row records.
    """
    name = type(exc).__name__
    reason = redact_text(f"{stage}: {name}: {exc}", [url])
    trace = redact_text("".join(traceback.format_exception(exc)), [url])
    log.error("%s\n%s", reason, trace.rstrip())
    return SendOutcome(False, error=reason, stage=stage, error_class=name)


def gave_up(attempts: int, stage: str) -> SendOutcome:
    """Earlier attempts never got as far as recording: the worker died in them."""
    return SendOutcome(
        False,
        error=f"gave up after {attempts - 1} attempt(s): the last never finished "
        "(the worker died or was killed while sending)",
        permanent=True,
        stage=stage,
    )
