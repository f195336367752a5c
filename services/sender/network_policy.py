"""The SSRF guard: deliveries reach only globally routable addresses, never cloud metadata, unless an
operator allowed the network (HOOKS_SENDER_ALLOWED_NETWORKS).

An address is judged in every form it takes: an IPv4-mapped (`::ffff:a.b.c.d`) or NAT64
(`64:ff9b::/96`, what DNS64 answers in an IPv6-only cluster) address is the IPv4 address it carries;
6to4 (`2002::/16`) and Teredo (`2001::/32`) addresses are themselves *and* the IPv4 addresses they embed (`2002:a9fe:a9fe::` is 169.254.169.254 through a
relay). Each form must be globally routable — `NOT_GLOBAL` lists the IANA special-purpose ranges, so the
answer does not depend on the Python version's `is_global` — or lie in an allowed network. Metadata
addresses stay refused inside a wider allowed network (allowing 169.254.0.0/16 does not open
169.254.169.254); an operator who truly wants one names it alone (169.254.169.254/32).

It is applied to the addresses a host name resolved to, right before connecting (see
`GuardedConnector`), so DNS tricks that point a public name at an inner address are caught too. The
tenant is told only "target address not allowed" (the delivery's error); what the name resolved to and
why it was refused goes to the log, for operators.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.tracing import Trace

from services.common.logging import get_logger

log = get_logger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: What a tenant sees when its target resolves only to refused addresses.
REFUSED_TEXT = "target address not allowed"

# Instance metadata services that are not all inside the link-local range.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud
}

#: Ranges that are not globally routable (IANA's IPv4 and IPv6 special-purpose address registries,
#: RFC 6890 and successors), with the name a log line gives them.
NOT_GLOBAL: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), name)
    for network, name in (
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/96", "unspecified, loopback or IPv4-compatible (deprecated)"),
        ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments (Teredo included)"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing SIDs"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)

_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TEREDO = ipaddress.ip_network("2001::/32")


class AddressRefused(OSError):
    """The target resolved only to addresses deliveries may not reach. Its text is what the tenant
    sees (`REFUSED_TEXT`); `detail` says which addresses and why, for the log."""

    def __init__(self, detail: str):
        super().__init__(REFUSED_TEXT)
        self.detail = detail


def forms_of(address: IPAddress) -> list[IPAddress]:
    """The addresses a connection to `address` reaches: an IPv4-mapped or NAT64 address is the IPv4
    address it carries; 6to4 and Teredo addresses are themselves and the IPv4 addresses they embed."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    forms: list[IPAddress] = [address]
    if address in _SIX_TO_FOUR and address.sixtofour is not None:
        forms.append(address.sixtofour)
    if address in _TEREDO and address.teredo is not None:
        forms.extend(address.teredo)  # (server, client)
    return forms


def not_global_reason(address: IPAddress) -> str | None:
    """Why `address` (one form) is not on the public internet, or None when it is."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for network, name in NOT_GLOBAL:
        if address.version == network.version and address in network:
            return name
    if not address.is_global or address.is_multicast or address.is_reserved:
        return "not globally routable"
    return None


class NetworkPolicy:
    def __init__(self, allowed: Sequence[IPNetwork] = ()):
        self.allowed = list(allowed)

    def _allows(self, address: IPAddress) -> bool:
        for network in self.allowed:
            if address.version != network.version or address not in network:
                continue
            if address in METADATA_ADDRESSES and network.num_addresses > 1:
                continue  # metadata is opened only by naming it alone
            return True
        return False

    def check(self, host: str) -> str | None:
        """Why the address `host` may not be reached (for the log, never for the tenant), or None."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return "not an IP address"
        for form in forms_of(address):
            if self._allows(form):
                continue
            reason = not_global_reason(form)
            if reason is not None:
                inside = f" (carried by {address})" if form != address else ""
                return f"address {form}{inside} is {reason}"
        return None


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that connects only to addresses the policy allows: it filters what a host
    resolved to (IP literals included), and refuses when nothing is left."""

    def __init__(self, policy: NetworkPolicy, **kwargs: Any):
        super().__init__(**kwargs)
        self._policy = policy

    async def _resolve_host(self, host: str, port: int, traces: Sequence[Trace] | None = None) -> list[ResolveResult]:
        resolved = await super()._resolve_host(host, port, traces=traces)
        allowed: list[ResolveResult] = []
        reasons: list[str] = []
        for entry in resolved:
            reason = self._policy.check(entry["host"])
            if reason is None:
                allowed.append(entry)
            else:
                reasons.append(reason)
        if not allowed:
            detail = f"refused to connect to {host}: {'; '.join(sorted(set(reasons)))}"
            log.warning("delivery target refused", host=host, port=port, reasons=sorted(set(reasons)))
            raise AddressRefused(detail)
        return allowed
