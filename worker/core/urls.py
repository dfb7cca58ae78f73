"""Canonical URLs and content hashes: the keys articles are deduplicated on."""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tld import get_fld
from url_normalize import url_normalize

# Query parameters that only say where a click came from.
_TRACKING_EXACT = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "wickedid",
        "ref_src",
        "ref_url",
        "cmpid",
        "ocid",
        "ncid",
        "sr_share",
        "smid",
        "spm",
        "rss",
        "ito",
        "at_medium",
        "at_campaign",
        "__twitter_impression",
        "amp",
    }
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "at_", "fb_", "ga_", "_hs", "oly_", "wt_")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _registrable(host: str) -> str:
    host = host.lower().rstrip(".")
    fld = get_fld(host, fix_protocol=True, fail_silently=True)
    # Unknown suffix (intranet, .example, IP): the last two labels are the site.
    return fld or ".".join(host.split(".")[-2:])


def _is_tracking(key: str) -> bool:
    k = key.lower()
    return k in _TRACKING_EXACT or k.startswith(_TRACKING_PREFIXES)


def rfc3986(url: str) -> str:
    """RFC 3986 section 6 normalisation (url-normalize): dot segments removed, percent
    escapes upper-cased and unreserved ones decoded (%7E -> ~), non-ASCII paths
    percent-encoded as UTF-8, host lower-cased and IDN as punycode, default port
    dropped. A URL it cannot read is left as it is (our own parsing copes)."""
    try:
        return url_normalize(url, default_scheme="http") or url
    except (ValueError, UnicodeError):  # e.g. a label IDNA refuses
        return url


# Cached: a feed lists the same links poll after poll, and url-normalize costs about
# 0.2 ms a URL (the entry's identity and the gap check both ask for every entry's link).
@functools.lru_cache(maxsize=4096)
def _normalize(url: str) -> str:
    parts = urlsplit(rfc3986(url.strip()))
    scheme = (parts.scheme or "http").lower()
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port
    except ValueError:  # "host:abc" — keep the host, drop the nonsense port
        port = None
    netloc = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
    if port and port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    path = parts.path or "/"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
    )
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


def _same_site(a: str, b: str) -> bool:
    ha, hb = urlsplit(a).hostname or "", urlsplit(b).hostname or ""
    return bool(ha and hb) and _registrable(ha) == _registrable(hb)


def canonical_url(url: str, declared: str | None = None) -> str:
    """The URL an article is stored under.

    `declared` is the page's rel=canonical / og:url. It wins only on the same
    registrable host (so a hostile page cannot claim another site's URL); that
    is also how AMP and mobile variants map to their main page.
    """
    own = _normalize(url)
    if declared and declared.strip().lower().startswith(("http://", "https://")):
        main = _normalize(declared)
        if _same_site(own, main):
            return main
    return own


_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the form content hashes are taken of."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def content_hash(title: str, body: str) -> str:
    """sha256 hex of the normalized title and body (whitespace/case-insensitive)."""
    data = normalize_text(title) + "\n" + normalize_text(body)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()
