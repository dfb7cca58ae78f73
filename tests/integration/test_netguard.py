"""The SSRF guard inside the fetcher, end to end on loopback.

Names are answered by a fake resolver (`fake_dns`), and every connect() is
recorded and refused unless it goes to loopback; so private, link-local,
CGNAT and metadata addresses are only ever *named*, never contacted, and the
tests assert that the refusal came before any connection attempt.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator

import pytest
import requests
import trustme

from tests.helpers import httpserver, netsafety
from tests.helpers.httpserver import TestServer, serve
from tests.helpers.netsafety import FakeDNS
from worker.config import FetchSpec
from worker.config.to_sources import fetch_options
from worker.http.errors import FetchError
from worker.http.fetcher import Fetcher

http_server = httpserver.http_server
fake_dns = netsafety.fake_dns

NON_PUBLIC = [
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.1.1",
    "100.64.0.1",  # CGNAT
    "127.0.0.1",
    "0.0.0.0",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fd12:3456::1",
    "fe80::1",
    "::1",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:127.0.0.1",
    "224.0.0.1",
]


def make(allow: tuple[str, ...] = (), **kwargs: object) -> Fetcher:
    spec = FetchSpec(deadline=2.0, connect_timeout=1.0, read_timeout=1.0, allow_networks=allow)
    return Fetcher(fetch_options(spec), min_interval=0.0, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def guarded() -> Iterator[Fetcher]:
    fetcher = make(respect_robots=True)
    yield fetcher
    fetcher.close()


def refused(call: Callable[[], object]) -> FetchError:
    with pytest.raises(FetchError) as info:
        call()
    assert info.value.kind == "blocked_address", info.value
    assert info.value.permanent
    return info.value


@pytest.mark.parametrize("address", NON_PUBLIC)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_names_resolving_to_non_public_addresses_are_refused_before_connecting(
    fake_dns: FakeDNS, guarded: Fetcher, address: str, scheme: str
) -> None:
    fake_dns.records["target.example"] = [address]
    error = refused(lambda: guarded.get(f"{scheme}://target.example/feed.xml", expect="feed"))
    assert address.split("%")[0] in error.message or error.message  # names the address
    assert "target.example" in fake_dns.lookups  # the guard resolved it itself...
    assert fake_dns.connects == []  # ...and refused before any connection attempt


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "10.1.1.1"])
def test_webhook_to_a_private_name_is_refused_before_connecting(
    fake_dns: FakeDNS, guarded: Fetcher, address: str
) -> None:
    fake_dns.records["hooks.example"] = [address]
    refused(lambda: guarded.post_json("https://hooks.example/x", b"{}", {}))
    assert fake_dns.connects == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://100.100.100.200/",  # Alibaba metadata, CGNAT range
        "http://2130706433/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://127.1/",
        "http://0/",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://[::1]/",
        "http://10.0.0.1/",
    ],
)
def test_literal_non_public_urls_are_refused_without_dns_or_connect(
    fake_dns: FakeDNS, guarded: Fetcher, url: str
) -> None:
    refused(lambda: guarded.get(url))
    assert fake_dns.lookups == []
    assert fake_dns.connects == []


def test_only_public_answers_are_connected_to(fake_dns: FakeDNS, http_server: TestServer) -> None:
    """A name answering with a private and an allowed address is reached on the allowed one."""
    fake_dns.records["mixed.example"] = ["169.254.169.254", "127.0.0.1"]
    fetcher = make(allow=("127.0.0.1/32",))
    http_server.add("/p", b"p")
    assert fetcher.get(http_server.url("/p", host="mixed.example")).body == b"p"
    assert fake_dns.connects == [("127.0.0.1", http_server.port)]


# --- redirects to loopback -----------------------------------------------------


@pytest.fixture
def first_hop() -> Iterator[TestServer]:
    """A server on 127.0.0.2: allowed on its own, so redirects away from it can be refused."""
    with serve(host="127.0.0.2") as ts:
        yield ts


@pytest.mark.parametrize("target_host", ["127.0.0.1", "localhost", "2130706433", "0x7f000001"])
def test_redirect_to_another_loopback_port_is_refused_unless_allowed(
    fake_dns: FakeDNS,
    first_hop: TestServer,
    http_server: TestServer,
    target_host: str,
) -> None:
    target = http_server.add("/internal", b"secret")
    first_hop.add(
        "/go", status=302, headers={"Location": http_server.url("/internal", host=target_host)}
    )
    strict = make(allow=("127.0.0.2/32",))
    refused(lambda: strict.get(first_hop.url("/go")))
    assert http_server.requests == []
    assert all(addr[0] == "127.0.0.2" for addr in fake_dns.connects)

    lenient = make(allow=("127.0.0.0/8",))
    result = lenient.get(first_hop.url("/go"))
    assert result.body == b"secret"
    assert result.url.endswith(f":{http_server.port}/internal")
    assert target.endswith("/internal")


def test_redirect_to_a_metadata_name_is_refused_before_connecting(
    fake_dns: FakeDNS, http_server: TestServer
) -> None:
    fake_dns.records["metadata.example"] = ["169.254.169.254"]
    http_server.add("/go", status=301, headers={"Location": "http://metadata.example/latest/"})
    fetcher = make(allow=("127.0.0.1/32",), respect_robots=True)
    refused(lambda: fetcher.get(http_server.url("/go")))
    assert "metadata.example" in fake_dns.lookups
    assert all(addr[0] == "127.0.0.1" for addr in fake_dns.connects)


def test_dns_rebinding_is_caught_at_connect_time(fake_dns: FakeDNS, first_hop: TestServer) -> None:
    """The same name, checked again for every new connection: no stale verdicts."""
    first_hop.add("/feed", b"<rss/>", headers={"Connection": "close"})
    fake_dns.records["rebind.example"] = ["127.0.0.2"]
    fetcher = make(allow=("127.0.0.2/32",))
    url = first_hop.url("/feed", host="rebind.example")
    assert fetcher.get(url).body == b"<rss/>"
    assert fake_dns.lookups.count("rebind.example") == 1  # resolved once, by the guard
    assert fake_dns.connects == [("127.0.0.2", first_hop.port)]  # to the checked address

    fake_dns.records["rebind.example"] = ["127.0.0.1"]  # the attacker's DNS flips
    refused(lambda: fetcher.get(url))
    assert fake_dns.connects == [("127.0.0.2", first_hop.port)]  # nothing new attempted


def test_allowed_host_name(fake_dns: FakeDNS, http_server: TestServer) -> None:
    fake_dns.records["intranet.example"] = ["127.0.0.1"]
    fake_dns.records["other.example"] = ["127.0.0.1"]
    http_server.add("/p", b"p")
    fetcher = make(allow=("intranet.example",))
    assert fetcher.get(http_server.url("/p", host="intranet.example")).body == b"p"
    refused(lambda: fetcher.get(http_server.url("/p", host="other.example")))


# --- HTTPS: the checked address, the original name -----------------------------


@pytest.fixture(scope="module")
def tls() -> tuple[trustme.CA, ssl.SSLContext]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("news.example").configure_cert(server_context)
    return ca, server_context


def test_https_keeps_sni_host_and_certificate_checks(
    fake_dns: FakeDNS, tls: tuple[trustme.CA, ssl.SSLContext]
) -> None:
    ca, server_context = tls
    seen_sni: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _ctx: seen_sni.append(name)
    fake_dns.records["news.example"] = ["127.0.0.1"]
    fake_dns.records["wrong.example"] = ["127.0.0.1"]
    with serve(ssl_context=server_context) as server, ca.cert_pem.tempfile() as ca_file:
        server.add("/feed", b"<rss/>", headers={"Content-Type": "application/rss+xml"})
        session = requests.Session()
        session.verify = ca_file
        fetcher = make(allow=("127.0.0.0/8",), session=session)
        result = fetcher.get(server.url("/feed", host="news.example"), expect="feed")
        assert result.body == b"<rss/>"
        assert seen_sni == ["news.example"]
        assert server.requests[-1].headers["Host"] == f"news.example:{server.port}"
        assert fake_dns.connects == [("127.0.0.1", server.port)]

        # the certificate is still checked against the name, not the address
        with pytest.raises(FetchError) as info:
            fetcher.get(server.url("/feed", host="wrong.example"))
        # robots.txt was unreachable, so nothing is fetched; the cause is TLS all the same
        assert info.value.kind == "tls" and "robots.txt" in info.value.message
        assert "certificate" in info.value.message.lower()
        plain = make(allow=("127.0.0.0/8",), session=session, respect_robots=False)
        with pytest.raises(FetchError) as info:
            plain.get(server.url("/feed", host="wrong.example"))
        assert info.value.kind == "tls"
        assert "certificate" in info.value.message.lower()

        strict = make(session=requests.Session())
        refused(lambda: strict.get(server.url("/feed", host="news.example")))


# --- kept-alive connections ------------------------------------------------------


def test_fifty_polls_of_one_host_share_a_connection(http_server: TestServer) -> None:
    http_server.add("/feed", b"<rss/>", headers={"Content-Type": "application/rss+xml"})
    fetcher = make(allow=("127.0.0.1/32",))
    for _ in range(50):
        assert fetcher.get(http_server.url("/feed")).body == b"<rss/>"
    assert http_server.hits("/feed") == 50
    assert 1 <= http_server.connections <= 2


def test_connections_are_kept_for_more_than_ten_hosts(
    fake_dns: FakeDNS, http_server: TestServer
) -> None:
    """urllib3 keeps pools for 10 hosts unless told more: the 11th would close the 1st."""
    http_server.add("/feed", b"<rss/>")
    hosts = [f"h{i}.example" for i in range(30)]
    for host in hosts:
        fake_dns.records[host] = ["127.0.0.1"]
    fetcher = make(allow=("127.0.0.1/32",), respect_robots=False)
    for _ in range(2):
        for host in hosts:
            fetcher.get(http_server.url("/feed", host=host))
    assert http_server.hits("/feed") == 60
    assert http_server.connections == 30


def test_a_kept_connection_keeps_its_checked_address_and_a_new_one_is_checked_again(
    fake_dns: FakeDNS, first_hop: TestServer
) -> None:
    first_hop.add("/feed", b"<rss/>")
    fake_dns.records["rebind.example"] = ["127.0.0.2"]
    fetcher = make(allow=("127.0.0.2/32",))
    url = first_hop.url("/feed", host="rebind.example")
    assert fetcher.get(url).body == b"<rss/>"
    fake_dns.records["rebind.example"] = ["127.0.0.1"]  # the name flips to a blocked address
    # the kept connection still leads only to the address checked when it was made
    assert fetcher.get(url).body == b"<rss/>"
    assert fake_dns.connects == [("127.0.0.2", first_hop.port)]
    assert first_hop.connections == 1
    first_hop.routes["/feed"] = (200, {"Connection": "close"}, b"<rss/>")
    assert fetcher.get(url).body == b"<rss/>"  # the server closes this one after answering
    refused(lambda: fetcher.get(url))  # a new connection: resolved and checked again
    assert fake_dns.connects == [("127.0.0.2", first_hop.port)]  # nothing new attempted
    assert first_hop.connections == 1
