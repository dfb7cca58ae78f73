"""The one error hierarchy: every error newswatch raises on purpose is a NewswatchError.

Callers decide what to do from typed fields, never by probing attributes:
- `kind`: a short machine name recorded on the failing row (`timeout`, `dns`,
  `http_status`, `extraction`, `config`, ...), the label metrics count by;
- `permanent`: True when trying the same thing again cannot help (a 404, a page that
  is not an article, a bad rule), so the unit is not retried;
- `retry_after`: seconds the other side asked us to wait (Retry-After), if any.

`TransientError` and `PermanentError` fix `permanent` for a whole family. An exception
that is not a NewswatchError is a bug: it is recorded as `internal` and retried.
"""

from __future__ import annotations


class NewswatchError(Exception):
    kind: str = "error"
    permanent: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        kind: str | None = None,
        permanent: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        if permanent is not None:
            self.permanent = permanent
        self.retry_after = retry_after


class TransientError(NewswatchError):
    """May succeed later: the network, the other side's load, a full disk."""

    permanent = False


class PermanentError(NewswatchError):
    """Will fail the same way again until someone changes the input or the config."""

    permanent = True


class InputError(PermanentError, ValueError):
    """Invalid input written by a person (config, rules, patterns, policies). A ValueError
    too, so pydantic validators that raise it report it as a validation error."""

    kind = "input"
