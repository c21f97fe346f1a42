"""The network policy for browser pages: which host names and addresses a page may reach.

`NetworkPolicy` is data (`mode`, `allow`, `deny`) with two checks, used by the
browser's filtering proxy (`browser_proxy.py`) for every connection a page asks for:

- `check_name(host)` before resolving: `mode="none"` refuses everything; a
  name matching a `deny` pattern is refused; with an `allow` list, a name
  matching none of its patterns is refused. Patterns are shell globs on the
  lower-cased name without a trailing dot (`*.example.com` matches
  `a.example.com`, not `example.com`; list both for both). An IP literal is
  matched as written. `host_name` is that normalisation, and the proxy's
  resolver rules use it too, so a trailing dot cannot pass one and miss the
  other.
- `check_address(ip)` on EVERY address the name resolved to (the proxy
  refuses the connection if any is refused, and connects only to a checked
  address, so DNS rebinding or a name pointing at 127.0.0.1 gains nothing):
  with `mode="public"` (the default) only globally routable unicast
  addresses pass: not loopback, link-local (169.254/16, which holds cloud
  metadata endpoints, and fe80::/10), private (10/8, 172.16/12,
  192.168/16, fc00::/7), shared CGNAT space (100.64/10), multicast,
  unspecified or otherwise reserved. An IPv4-mapped IPv6 address is judged
  as its IPv4 address. Nor may a public address be one of the host's own
  (`own_address`: the proxy connects from the host, so a service bound to
  0.0.0.0 on a host with a public address would be reachable); it is
  refused as "the host's own address". `mode="all"` checks names only.

Allow and deny lists only narrow: an allowed name still has its addresses
checked (use `mode="all"` for an allow list of local hosts). Unix sockets are
never reachable through the proxy (it only opens TCP connections).

An IPv4 address embedded in an IPv6 transition prefix (6to4 2002::/16,
Teredo 2001::/32's client, NAT64 64:ff9b::/96) is judged as that IPv4
address too, so a gateway on the way cannot carry a page to 127.0.0.1 or
10.0.0.1. Not covered: what a reachable public host forwards to is its own
business (a router or NAT the host sits behind that forwards a public
address back to it, too); an address added to the host is seen up to
`OWN_ADDRESSES_TTL_S` late; IPv6 local routes for whole prefixes (AnyIP)
are not read, only interface addresses.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

NetworkMode = Literal["none", "public", "all"]
NETWORK_MODES: Final[tuple[NetworkMode, ...]] = ("none", "public", "all")
DEFAULT_NETWORK_MODE: Final[NetworkMode] = "public"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a connection was refused: the rule, for the page and the model."""

    host: str
    rule: str
    address: str | None = None

    def describe(self) -> str:
        at = f" ({self.address})" if self.address else ""
        return f"{self.host}{at} is blocked by the browser's network policy: {self.rule}"


def host_name(host: str) -> str:
    """`host` as the policy and the resolver rules see it: lower case, no trailing dot,
    no IPv6 brackets. One function for both, so `a.test.` cannot pass as `a.test` to one
    and as something else to the other."""
    return host.strip().rstrip(".").lower().removeprefix("[").removesuffix("]")


def address_class(ip: IPAddress) -> str | None:
    """The non-public class `ip` falls in ("loopback", "private", ...), or None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return address_class(ip.ipv4_mapped)
        embedded = _embedded_ipv4(ip)
        if embedded is not None and (kind := address_class(embedded)) is not None:
            return f"{kind} (embedded in {ip})"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared address space (CGNAT)"
    if ip.is_private:
        return "private"
    if not ip.is_global or ip.is_reserved:
        return "reserved"
    return None


_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a 6to4, Teredo (its client) or NAT64 address carries, if any."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


OWN_ADDRESSES_TTL_S: Final = 2.0
"""How long the host's own addresses are cached (an address added later is seen this late)."""
OWN_ADDRESS: Final = "the host's own address"
_own: tuple[float, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = (-1e9, ())


def own_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The addresses this host's network namespace answers on itself, from /proc.

    IPv4: every "host LOCAL" entry of /proc/net/fib_trie (an interface's address, or a
    local route's whole prefix, like 127.0.0.0/8). IPv6: the interfaces' addresses in
    /proc/net/if_inet6. Cached for `OWN_ADDRESSES_TTL_S`."""
    global _own
    now = time.monotonic()
    if now - _own[0] < OWN_ADDRESSES_TTL_S:
        return _own[1]
    nets: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
    try:
        with open("/proc/net/fib_trie", encoding="ascii") as f:
            last = ""
            for line in f:
                words = line.split()
                if words[:1] == ["|--"] and len(words) == 2:
                    last = words[1]
                elif words[1:] == ["host", "LOCAL"] and last:
                    nets.add(ipaddress.IPv4Network(f"{last}{words[0]}", strict=False))
    except OSError:
        pass
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as f:
            for line in f:
                raw = line.split()[0]
                nets.add(ipaddress.IPv6Network(int(raw, 16)))
    except OSError:
        pass
    _own = (now, tuple(nets))
    return _own[1]


def own_address(ip: IPAddress) -> bool:
    """`ip` is one this host answers on itself (`own_networks`)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in own_networks())


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """What pages may reach (see the module docstring)."""

    mode: NetworkMode = DEFAULT_NETWORK_MODE
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in NETWORK_MODES:
            raise ValueError(f"network mode must be one of {NETWORK_MODES}, got {self.mode!r}")
        for p in (*self.allow, *self.deny):
            if not p.strip() or any(c.isspace() for c in p.strip()):
                raise ValueError(f"host pattern {p!r} must be one host name or glob")

    @classmethod
    def of(
        cls, mode: NetworkMode, allow: Sequence[str] = (), deny: Sequence[str] = ()
    ) -> NetworkPolicy:
        return cls(mode, tuple(host_name(p) for p in allow), tuple(host_name(p) for p in deny))

    def check_name(self, host: str) -> Refusal | None:
        name = host_name(host)
        if self.mode == "none":
            return Refusal(name, "--browser-network none (no network for pages)")
        for p in self.deny:
            if fnmatch.fnmatchcase(name, p):
                return Refusal(name, f"--browser-deny {p}")
        if self.allow and not any(fnmatch.fnmatchcase(name, p) for p in self.allow):
            return Refusal(name, "not in --browser-allow " + " ".join(self.allow))
        return None

    def check_address(self, host: str, ip: IPAddress) -> Refusal | None:
        if self.mode != "public":
            return None
        kind = address_class(ip)
        if kind is None and own_address(ip):
            rule = f"{OWN_ADDRESS} ({ip}) is not reachable from pages (--browser-network public)"
            return Refusal(host_name(host), rule, str(ip))
        if kind is None:
            return None
        return Refusal(
            host_name(host), f"{kind} addresses are not public (--browser-network public)", str(ip)
        )

    def describe(self) -> str:
        """One line for notices: what pages may reach."""
        what = {
            "none": "nothing",
            "public": "public addresses only",
            "all": "any address, the host's own included",
        }[self.mode]
        parts = [f"browser network: {what}"]
        if self.mode != "none" and self.allow:
            parts.append("hosts " + " ".join(self.allow))
        if self.mode != "none" and self.deny:
            parts.append("except " + " ".join(self.deny))
        return "; ".join(parts)


DEFAULT_POLICY: Final = NetworkPolicy()
"""Public addresses only, no host lists: what pages get unless told otherwise."""

__all__ = [
    "DEFAULT_NETWORK_MODE",
    "DEFAULT_POLICY",
    "NETWORK_MODES",
    "NetworkMode",
    "NetworkPolicy",
    "Refusal",
    "address_class",
    "host_name",
    "own_address",
    "own_networks",
]
