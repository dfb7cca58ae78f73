"""Bytes -> text for HTML pages, never raising on bad input.

Trust order: the HTTP Content-Type charset, then the page's own <meta charset>
or http-equiv declaration (in the first 4 KB, as browsers do), then
charset-normalizer's guess. Bytes invalid in the chosen charset are replaced.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

_META_SCAN_BYTES = 4096
# Enough bytes for a confident guess; scanning 20 MB would be slow.
_DETECT_BYTES = 64 * 1024

_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _known(name: str | None) -> str | None:
    """A codec name Python knows, following the WHATWG label aliases that matter."""
    if not name:
        return None
    name = name.strip().lower()
    # WHATWG: latin-1 and ascii labels mean windows-1252 on the web.
    if name in {"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"}:
        name = "cp1252"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = _HEADER_CHARSET.search(content_type)
    return _known(m.group(1)) if m else None


def charset_from_meta(body: bytes) -> str | None:
    m = _META_CHARSET.search(body[:_META_SCAN_BYTES])
    if not m:
        return None
    found = _known(m.group(1).decode("ascii", "replace"))
    # A page that is served as bytes cannot really be UTF-16 if its meta is ASCII-readable.
    if found and found.startswith("utf-16"):
        return "utf-8"
    return found


def _detect(body: bytes) -> str:
    sample = body[:_DETECT_BYTES]
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # A truncated multi-byte char at the end of the sample is still UTF-8.
        if exc.start >= len(sample) - 3:
            return "utf-8"
    results = list(from_bytes(sample))
    if not results:
        return "cp1252"
    best = results[0]
    # Ties are common on short Western text; the web's most common legacy charset wins them.
    for match in results:
        if match.encoding == "cp1252" and match.chaos <= best.chaos + 0.01:
            return "cp1252"
    return _known(best.encoding) or "utf-8"


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """Decode an HTML body; never raises, replaces undecodable bytes."""
    if isinstance(body, str):  # be forgiving to callers that already decoded
        return body
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, "replace")
    charset = charset_from_content_type(content_type) or charset_from_meta(body) or _detect(body)
    return body.decode(charset, "replace")
