"""robots.txt as RFC 9309 reads it (Protego), through the fetcher against a real
server on 127.0.0.1: longest match, Allow on a tie, `*` and `$`, group selection by
product token, and a robots.txt over 500 KiB read as far as that, not allowed whole.
The cases are data: tests/data/robots/rfc9309.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import httpserver, netsafety
from tests.helpers.httpserver import TestServer
from worker.config import FetchSpec
from worker.config.to_sources import fetch_options
from worker.http.errors import FetchError
from worker.http.fetcher import Fetcher
from worker.http.robots import ROBOTS_MAX_BYTES

http_server = httpserver.http_server
fake_dns = netsafety.fake_dns

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parents[1] / "data" / "robots" / "rfc9309.yaml").read_text()
)


@pytest.fixture
def fetcher(fake_dns: netsafety.FakeDNS) -> Iterator[Fetcher]:
    spec = FetchSpec(deadline=5.0, allow_networks=("127.0.0.0/8",))  # type: ignore[call-arg]
    f = Fetcher(fetch_options(spec), respect_robots=True, min_interval=0.0)
    yield f
    f.close()


def _allowed(fetcher: Fetcher, url: str) -> bool:
    try:
        fetcher.get(url)
    except FetchError as exc:
        assert exc.kind == "robots_disallow", exc
        return False
    return True


def _serve_everything(server: TestServer) -> None:
    # any page answers 200, so a refusal can only come from robots.txt
    server.routes.update({p: (200, {}, b"page") for c in CASES for p in c["allowed"]})
    server.routes.update({p: (200, {}, b"page") for c in CASES for p in c["disallowed"]})


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_rfc9309_case(case: dict[str, Any], fetcher: Fetcher, http_server: TestServer) -> None:
    http_server.add("/robots.txt", case["robots"], headers={"Content-Type": "text/plain"})
    _serve_everything(http_server)
    verdicts = {p: _allowed(fetcher, http_server.url(p)) for p in case["allowed"]}
    verdicts |= {p: _allowed(fetcher, http_server.url(p)) for p in case["disallowed"]}
    expected = {p: True for p in case["allowed"]} | {p: False for p in case["disallowed"]}
    assert verdicts == expected
    assert http_server.hits("/robots.txt") == 1  # one fetch, cached for the rest


def test_a_robots_txt_over_500_kib_is_read_up_to_there(
    fetcher: Fetcher, http_server: TestServer
) -> None:
    head = b"User-agent: *\nDisallow: /secret/\n"
    padding = b"# padding to push the next rule past the limit\n" * (ROBOTS_MAX_BYTES // 40)
    body = head + padding + b"Disallow: /late/\n"
    assert len(head + padding) > ROBOTS_MAX_BYTES
    http_server.add("/robots.txt", body, headers={"Content-Type": "text/plain"})
    for path in ("/secret/a", "/late/a", "/open"):
        http_server.add(path, b"page")
    # the rules in the first 500 KiB hold (a too-large robots.txt used to allow all)
    assert not _allowed(fetcher, http_server.url("/secret/a"))
    # what lies beyond is not read
    assert _allowed(fetcher, http_server.url("/late/a"))
    assert _allowed(fetcher, http_server.url("/open"))


def test_a_rule_cut_at_the_limit_is_dropped_not_read_half(
    fetcher: Fetcher, http_server: TestServer
) -> None:
    head = b"User-agent: *\n"
    padding = b"#" * (ROBOTS_MAX_BYTES - len(head) - 12) + b"\n"
    # "Disallow: /" would be what is left of "Disallow: /private" at the cut
    body = head + padding + b"Disallow: /private\n"
    http_server.add("/robots.txt", body, headers={"Content-Type": "text/plain"})
    http_server.add("/news", b"page")
    assert _allowed(fetcher, http_server.url("/news"))
