"""The SSRF guard's verdicts, and its resolver, without any network."""

from __future__ import annotations

import socket

import pytest

from tests.helpers import netsafety
from tests.helpers.netsafety import FakeDNS
from worker.http.netguard import (
    AddressGuard,
    AllowList,
    BlockedAddressError,
    is_allowed_address,
)

fake_dns = netsafety.fake_dns

BLOCKED = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.10",
    "198.18.0.1",
    "::",
    "::1",
    "fc00::1",
    "fd00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fe80::1",
    "fe80::1%2",
    "fec0::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",  # IPv4-mapped forms
    "::ffff:7f00:1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:100.64.0.1",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "11.0.0.1",
    "172.32.0.1",
    "100.128.0.1",
    "169.255.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
]


@pytest.mark.parametrize("ip", BLOCKED)
def test_non_public_addresses_are_refused(ip: str) -> None:
    assert is_allowed_address(ip) is False


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_are_allowed(ip: str) -> None:
    assert is_allowed_address(ip) is True


@pytest.mark.parametrize(
    ("ip", "allow", "expected"),
    [
        ("127.0.0.1", ["127.0.0.0/8"], True),
        ("127.8.9.10", ["127.0.0.0/8"], True),
        ("::ffff:127.0.0.1", ["127.0.0.0/8"], True),  # the mapped form of an allowed address
        ("10.0.0.1", ["127.0.0.0/8"], False),
        ("10.1.2.3", ["10.1.2.3"], True),  # a single address
        ("10.1.2.4", ["10.1.2.3"], False),
        ("fd00:ec2::254", ["fd00::/8"], True),
        ("fd00:ec2::254", ["10.0.0.0/8"], False),
        ("169.254.169.254", ["intranet.example", ".corp.example"], False),  # names: not here
        ("192.168.1.5", [" 192.168.1.0/24 ", ""], True),  # whitespace and blanks tolerated
    ],
)
def test_allow_list_networks(ip: str, allow: list[str], expected: bool) -> None:
    assert is_allowed_address(ip, allow) is expected


def test_allow_list_parsing() -> None:
    allow = AllowList.parse(["10.0.0.0/8", "Intranet.Example.", ".corp.example", "*.lan.example"])
    assert [str(n) for n in allow.networks] == ["10.0.0.0/8"]
    assert allow.allows_host("intranet.example")
    assert allow.allows_host("INTRANET.example.")
    assert not allow.allows_host("www.intranet.example")
    assert allow.allows_host("wiki.corp.example")
    assert allow.allows_host("a.b.lan.example")
    assert not allow.allows_host("corp.example.evil.test")
    assert not allow.allows_host("evilcorp.example")


# --- resolving: every address checked, no DNS for literals ------------------


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f000001", "017700000001", "127.1", "0x7f.1", "0177.0.0.1"]
)
def test_legacy_ipv4_spellings_are_loopback_and_refused_without_dns(
    host: str, fake_dns: FakeDNS
) -> None:
    with pytest.raises(BlockedAddressError) as info:
        AddressGuard().resolve(host, 80)
    assert info.value.address == "127.0.0.1"
    assert fake_dns.lookups == []  # decided locally, never asked a resolver
    assert AddressGuard(["127.0.0.0/8"]).resolve(host, 80)[0][4] == ("127.0.0.1", 80)


def test_numeric_nonsense_fails_like_a_resolver_without_dns(fake_dns: FakeDNS) -> None:
    with pytest.raises(socket.gaierror):
        AddressGuard().resolve("99999999999", 80)
    assert fake_dns.lookups == []


def test_localhost_is_loopback_without_dns(fake_dns: FakeDNS) -> None:
    with pytest.raises(BlockedAddressError):
        AddressGuard().resolve("localhost", 80)
    with pytest.raises(BlockedAddressError):
        AddressGuard().resolve("app.localhost.", 80)
    assert fake_dns.lookups == []


@pytest.mark.parametrize(
    "address",
    ["10.0.0.5", "172.20.1.1", "192.168.1.1", "169.254.169.254", "100.64.1.1", "fd00:ec2::254"],
)
def test_names_resolving_to_private_addresses_are_refused(address: str, fake_dns: FakeDNS) -> None:
    fake_dns.records["evil.example"] = [address]
    with pytest.raises(BlockedAddressError) as info:
        AddressGuard().resolve("evil.example", 443)
    assert info.value.address == address
    assert fake_dns.lookups == ["evil.example"]


def test_only_public_answers_of_a_mixed_answer_are_kept(fake_dns: FakeDNS) -> None:
    fake_dns.records["mixed.example"] = ["127.0.0.1", "93.184.216.34", "10.0.0.1"]
    infos = AddressGuard().resolve("mixed.example", 80)
    assert [i[4][0] for i in infos] == ["93.184.216.34"]


def test_allowed_host_name_skips_the_address_check(fake_dns: FakeDNS) -> None:
    fake_dns.records["intranet.example"] = ["10.0.0.7"]
    fake_dns.records["other.example"] = ["10.0.0.7"]
    guard = AddressGuard(["intranet.example"])
    assert guard.resolve("intranet.example", 80)[0][4][0] == "10.0.0.7"
    with pytest.raises(BlockedAddressError):
        guard.resolve("other.example", 80)


def test_ipv6_literal_in_brackets(fake_dns: FakeDNS) -> None:
    with pytest.raises(BlockedAddressError):
        AddressGuard().resolve("[::1]", 80)
    with pytest.raises(BlockedAddressError):
        AddressGuard().resolve("[::ffff:169.254.169.254]", 80)
    assert AddressGuard(["::1/128"]).resolve("[::1]", 80)[0][4][:2] == ("::1", 80)
