"""URLs in messages are shown as scheme and host only: their paths may be secrets.

A Slack, Discord or Teams incoming-webhook URL *is* a credential (the token is
the path), and any URL may carry `user:password@` or a `?token=`. Every error
and log message that names a URL, or quotes an exception text (requests and
urllib3 put the full URL in theirs, or its path after "with url:"), goes
through `redact_text` before it is logged, stored or sent in a notice.

Pure: no I/O. Scrubbing is idempotent, so a text may pass through it twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["redact_text", "redact_url"]

# scheme://anything-up-to-whitespace-or-a-quote. The scheme is bounded so that a
# long run of letters costs a bounded look-back, not a quadratic scan.
_URL_RE = re.compile(r"""([A-Za-z][A-Za-z0-9+.-]{0,31})://([^\s'"<>`\\]*)""")
# urllib3 / requests name the path alone: "Max retries exceeded with url: /services/T0/B0/X"
_PATH_RE = re.compile(r"""(\burl: ?)(/[^\s'"<>`]*)""", re.IGNORECASE)
# the host (a name, IDN included, or an IPv6 literal) and port at the start of the authority;
# what follows (trailing punctuation of the sentence) is not part of it
_HOST_RE = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[\w.~-]+)(?::\d{1,5}(?!\d))?")


def redact_url(url: str) -> str:
    """'https://user:pw@hooks.slack.com/services/T/B/X?t=1' -> 'https://hooks.slack.com'."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        return "(url)"
    # the authority ends at the first "/", "?" or "#"; credentials end at its last "@"
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    host = _HOST_RE.match(authority)
    return f"{scheme.lower()}://{host.group(0).lower() if host else '(host)'}"


def _redact_match(m: re.Match[str]) -> str:
    url = m.group(0)
    # punctuation that ends the sentence around the URL stays: "…/TOKEN: HTTP 500"
    kept = url.rstrip(".,;:!?)]}")
    return redact_url(kept) + url[len(kept) :]


def _secret_parts(url: str) -> list[str]:
    """The pieces of `url` other than its host: credentials, path segments, query values
    (longest first). Short ones ("api", "v1") are common words, not secrets."""
    rest = url.partition("://")[2]
    host = redact_url(url).partition("://")[2]
    hosts = {host, host.rpartition(":")[0]}
    parts = {p for p in re.split(r"[:/?#&=;@]+", rest) if p.lower() not in hosts}
    return sorted((p for p in parts if len(p) >= _MIN_SECRET), key=len, reverse=True)


_MIN_SECRET = 6


def redact_text(text: str, known: Iterable[str | None] = ()) -> str:
    """Every URL inside `text` cut to scheme and host; bare request paths replaced.

    `known`: URLs the text may quote in pieces (a parser's message quotes one part of
    a URL without its syntax, e.g. "Port could not be cast to integer value as 'pw'"):
    their credentials, path segments and query values are replaced wherever they occur.
    """
    if "/" in text:
        text = _PATH_RE.sub(r"\1(path)", _URL_RE.sub(_redact_match, text))
    for url in known:
        for part in _secret_parts(url or ""):
            text = text.replace(part, "(redacted)")
    return text
