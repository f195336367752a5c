"""The SSRF guard: deliveries may not reach loopback, private, link-local, multicast, reserved or
cloud-metadata addresses unless an operator allowed the network (HOOKS_SENDER_ALLOWED_NETWORKS).

It is applied to the addresses a host name resolved to, right before connecting (see
`GuardedConnector`), so DNS tricks that point a public name at an inner address are caught too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import aiohttp

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata services that are not all inside the link-local range.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud
}


class AddressRefused(OSError):
    """The target resolved only to addresses deliveries may not reach."""


def refusal_reason(address: IPAddress) -> str | None:
    """Why an address may not be reached, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for attribute, name in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(address, attribute):
            return name
    if address in ipaddress.ip_network("100.64.0.0/10"):
        return "shared (carrier-grade NAT)"
    return None


class NetworkPolicy:
    def __init__(self, allowed: Sequence[IPNetwork] = ()):
        self.allowed = list(allowed)

    def check(self, host: str) -> str | None:
        """Why the address `host` may not be reached, or None."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return "not an IP address"
        if any(address in network for network in self.allowed):
            return None
        reason = refusal_reason(address)
        return f"address {address} is {reason}" if reason else None


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that connects only to addresses the policy allows: it filters what a host
    resolved to (IP literals included), and refuses when nothing is left."""

    def __init__(self, policy: NetworkPolicy, **kwargs):
        super().__init__(**kwargs)
        self._policy = policy

    async def _resolve_host(self, host, port, traces=None):  # noqa: ANN001 - aiohttp's signature
        resolved = await super()._resolve_host(host, port, traces=traces)
        allowed, reasons = [], []
        for entry in resolved:
            reason = self._policy.check(entry["host"])
            if reason is None:
                allowed.append(entry)
            else:
                reasons.append(reason)
        if not allowed:
            raise AddressRefused(f"refused to connect to {host}: {'; '.join(sorted(set(reasons)))}")
        return allowed
