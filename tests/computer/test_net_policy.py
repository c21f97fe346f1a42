"""The browser's network policy as data: which addresses count as public, which names pass."""

from __future__ import annotations

import ipaddress

import pytest

from itemloop.sandbox.net_policy import NetworkPolicy, address_class


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        # IPv4 carried inside IPv6 transition prefixes is judged as that IPv4 address.
        ("2002:7f00:1::", "loopback (embedded in 2002:7f00:1::)"),
        ("2002:a9fe:a9fe::", "link-local (embedded in 2002:a9fe:a9fe::)"),
        ("64:ff9b::a00:1", "private (embedded in 64:ff9b::a00:1)"),
        (
            "2001:0:4136:e378:8000:63bf:f5ff:fffe",
            "private (embedded in 2001:0:4136:e378:8000:63bf:f5ff:fffe)",
        ),
    ],
)
def test_non_public_addresses_are_named(address: str, kind: str) -> None:
    assert address_class(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", ["1.2.3.4", "93.184.216.34", "2606:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert address_class(ipaddress.ip_address(address)) is None
    assert NetworkPolicy().check_address("h", ipaddress.ip_address(address)) is None


def test_lists_narrow_by_name() -> None:
    policy = NetworkPolicy.of(
        "public", allow=["*.example.com", "example.com"], deny=["bad.example.com"]
    )
    assert policy.check_name("Example.COM.") is None
    assert policy.check_name("a.example.com") is None
    refused = policy.check_name("bad.example.com")
    assert refused is not None and "--browser-deny" in refused.rule
    other = policy.check_name("example.org")
    assert other is not None and "--browser-allow" in other.rule
    assert NetworkPolicy.of("none").check_name("example.com") is not None
