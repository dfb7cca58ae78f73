"""The plain GET: a feed or page request sent straight to the guarded urllib3 pool.

`requests.Session.request` spends most of a 304's client CPU around the exchange, not
in it: preparing the request (URL, headers, cookies, auth, hooks), merging the session's
settings, building a `Response` and looking for cookies in it (bench/exchange.py: about
0.7 CPU-ms per kept-alive 304, against 0.06 for `http.client`). A poll needs none of it,
so the fetcher's GETs go to the very pools the session's `GuardedAdapter` keeps, with
the arguments the adapter itself would pass (no redirects followed, no retries, the
session's TLS verification, the connect and read timeouts, the body left to stream):

- the SSRF guard is the pool's connection class, so every new connection is resolved
  and checked as before, redirect hops included (the fetcher follows them one by one
  through this same path), and proxies are never used;
- the URL is prepared by requests (`PreparedRequest.prepare_url`: IDNA, quoting), so
  the same bytes go on the wire; kept for the 4,096 URLs used last (~0.85 KB each), a
  miss costs ~0.016 ms;
- the session's default headers are sent under the caller's, as `Session.request` does.

What the plain path does not do, it leaves to the session (`PlainGet.open` answers
None): a URL with user:password in it (Basic auth), a session with auth or default
parameters, and any request once the session holds a cookie, which requests keeps in
its jar and sends back. A cookie a plain GET receives is put into that jar, so from then
on the session sends it, as it would have without this path.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import urlsplit

import requests
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from urllib3 import BaseHTTPResponse
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import LocationValueError
from urllib3.util.timeout import Timeout

from worker.http.netguard import GuardedAdapter


@lru_cache(maxsize=4096)
def _prepared(url: str) -> tuple[requests.PreparedRequest, str] | None:
    """The URL as requests sends it, and its request target ("/path?query"); None when
    it carries credentials (the session turns those into an Authorization header).
    requests' own exceptions for a bad URL are raised (and not cached)."""
    prep = requests.PreparedRequest()
    prep.prepare_url(url, None)
    prep.method = "GET"
    prep.headers = CaseInsensitiveDict()  # for the cookie jar's look at the request
    assert prep.url is not None
    if "@" in urlsplit(prep.url).netloc:
        return None
    return prep, prep.path_url


class PlainGet:
    """GETs through `adapter`'s pools, with `session`'s verification and headers."""

    def __init__(self, session: requests.Session, adapter: GuardedAdapter) -> None:
        self.session = session
        self.adapter = adapter

    def open(
        self, url: str, headers: Mapping[str, str], connect_timeout: float, read_timeout: float
    ) -> BaseHTTPResponse | None:
        """The response, its body not yet read; None when the session must send it."""
        session = self.session
        if session.cookies or session.auth is not None or session.params:
            return None
        prepared = _prepared(url)
        if prepared is None:
            return None
        prep, target = prepared
        verify, cert = session.verify, session.cert
        try:
            pool = self.adapter.get_connection_with_tls_context(prep, verify, cert=cert)
        except LocationValueError as exc:
            raise requests.exceptions.InvalidURL(exc) from exc
        assert isinstance(pool, HTTPConnectionPool)  # no proxies: a host's own pool
        self.adapter.cert_verify(pool, prep.url or url, verify, cert)
        sent = CaseInsensitiveDict(session.headers)
        sent.update(headers)
        response = pool.urlopen(
            "GET",
            target,
            body=None,
            headers=sent,  # type: ignore[arg-type]  # str values; bytes only if a caller set them
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=False,
            retries=self.adapter.max_retries,
            timeout=Timeout(connect=connect_timeout, read=read_timeout),
            chunked=False,
        )
        if "Set-Cookie" in response.headers:
            extract_cookies_to_jar(session.cookies, prep, response)
        return response
