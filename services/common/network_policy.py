"""The SSRF policy: deliveries reach only globally routable addresses, never cloud metadata, unless an
operator allowed the network (HOOKS_SENDER_ALLOWED_NETWORKS, read by the registry and the sender).

An address is judged in every form it takes: an IPv4-mapped (`::ffff:a.b.c.d`) or NAT64
(`64:ff9b::/96`, what DNS64 answers in an IPv6-only cluster) address is the IPv4 address it carries;
6to4 (`2002::/16`) and Teredo (`2001::/32`) addresses are themselves *and* the IPv4 addresses they embed (`2002:a9fe:a9fe::` is 169.254.169.254 through a
relay). Each form must be globally routable — `NOT_GLOBAL` lists the IANA special-purpose ranges, so the
answer does not depend on the Python version's `is_global` — or lie in an allowed network. Metadata
addresses stay refused inside a wider allowed network (allowing 169.254.0.0/16 does not open
169.254.169.254); an operator who truly wants one names it alone (169.254.169.254/32).

It is applied twice, by the one `NetworkPolicy`:

- by the registry when an endpoint's target is written (`NetworkPolicy.target_refusal`): a literal
  address, or a host name whose every address (DNS, at most RESOLVE_TIMEOUT_SECONDS, off the event
  loop) is refused, is INVALID_ARGUMENT naming `endpoint.target`. A name that does not resolve (no
  such name, no answer in time) is accepted: DNS may be briefly down, or the record not made yet,
  and the sender judges the name again anyway. The tenant is told what kind of address its name
  resolves to, never the address itself (an inner address says how the operator's network is laid
  out); the addresses go to the log, for operators.
- by the sender on the addresses a host name resolved to, right before connecting
  (services/sender/network_policy.py, `GuardedConnector`), so DNS that changed since, or tricks that
  point a public name at an inner address, are caught too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.logging import get_logger
from services.common.settings import checked_by

log = get_logger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: How long the registry waits for DNS when it judges a target's host name.
RESOLVE_TIMEOUT_SECONDS = 2.0
#: Threads that wait on DNS for those lookups, apart from the loop's default executor: names whose
#: servers never answer hold these (each past its timeout, until the system resolver gives up), never
#: the threads other work needs. When all are taken, a lookup waits its timeout and the name passes
#: (the sender judges it anyway).
RESOLVER_THREADS = 8
_resolver = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="target-dns")
#: The setting that opens networks, as tenants are told of it.
ALLOWED_NETWORKS_VARIABLE = "HOOKS_SENDER_ALLOWED_NETWORKS"

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


def parse_networks(text: str) -> list[IPNetwork]:
    """Comma-separated CIDRs (a bare address is its own /32 or /128); ValueError naming a bad one."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


class AllowedNetworkSettings(BaseSettings):
    """The setting, read by the registry (at write time) and the sender (at delivery time): their
    settings classes derive from this one, so both judge targets by the same networks."""

    model_config = SettingsConfigDict(env_prefix="HOOKS_", extra="ignore", frozen=True)

    #: CIDRs deliveries may reach although private, loopback or link-local (e.g. 10.0.0.0/8); empty: none. The registry refuses other such targets when an endpoint is written, the sender when it connects.
    sender_allowed_networks: Annotated[str, checked_by(parse_networks)] = ""

    @property
    def allowed_networks(self) -> list[IPNetwork]:
        return parse_networks(self.sender_allowed_networks)

    @property
    def network_policy(self) -> NetworkPolicy:
        return NetworkPolicy(self.allowed_networks)


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

    def refusal(self, address: IPAddress) -> tuple[IPAddress, str] | None:
        """The first form of `address` that may not be reached and why (`not_global_reason`), or None."""
        for form in forms_of(address):
            if self._allows(form):
                continue
            reason = not_global_reason(form)
            if reason is not None:
                return form, reason
        return None

    def check(self, host: str) -> str | None:
        """Why the address `host` may not be reached (for the log, never for the tenant), or None."""
        address = ip_literal(host)
        if address is None:
            return "not an IP address"
        refused = self.refusal(address)
        if refused is None:
            return None
        form, reason = refused
        inside = f" (carried by {address})" if form != address else ""
        return f"address {form}{inside} is {reason}"

    async def target_refusal(self, host: str, timeout: float = RESOLVE_TIMEOUT_SECONDS) -> str | None:
        """What a tenant is told when a target at `host` (a URL's host: a name or a literal address)
        is refused, or None when it may be written: a literal address the policy refuses, or a name
        whose every address it refuses (as the sender refuses it: it connects to any address
        allowed). A name that does not resolve within `timeout` passes (see the module's doc)."""
        literal = ip_literal(host)
        if literal is not None:
            refused = self.refusal(literal)
            if refused is None:
                return None
            return f"{host} is {_kind(refused)}, which this deployment does not deliver to{_OPENED_BY}"
        addresses = await _resolve(host, timeout)
        if not addresses:
            return None
        refusals = [self.refusal(address) for address in addresses]
        if any(refused is None for refused in refusals):
            return None
        log.info(
            "endpoint target refused",
            host=host,
            reasons=sorted({f"{form} is {reason}" for form, reason in filter(None, refusals)}),
        )
        kinds = sorted({_kind(refused) for refused in filter(None, refusals)})
        return f"{host} resolves to {' and '.join(kinds)}, which this deployment does not deliver to{_OPENED_BY}"


_OPENED_BY = f" (an operator can allow a network with {ALLOWED_NETWORKS_VARIABLE})"


def _kind(refused: tuple[IPAddress, str]) -> str:
    """'a private address', 'a cloud metadata address'...: what a refused address is, without it."""
    reason = refused[1]
    if reason.startswith("a "):
        return reason
    if reason.startswith("not "):
        return f"an address {reason}"
    article = "an" if reason[0].lower() in "aeio" or reason.startswith("unsp") else "a"
    return f"{article} {reason} address"


def ip_literal(host: str) -> IPAddress | None:
    """`host` as an IP address (an IPv6 zone dropped), or None when it is a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


async def _resolve(host: str, timeout: float) -> list[IPAddress]:
    """The addresses `host` resolves to (the system's resolver, as aiohttp's default resolver uses it,
    in a thread of `_resolver`), or none when it does not resolve within `timeout`."""
    loop = asyncio.get_running_loop()
    lookup = loop.run_in_executor(_resolver, socket.getaddrinfo, host, None, 0, socket.SOCK_STREAM)
    try:
        answers = await asyncio.wait_for(lookup, timeout)
    except (OSError, UnicodeError, TimeoutError):
        return []
    addresses = []
    for _family, _type, _proto, _name, sockaddr in answers:
        address = ip_literal(str(sockaddr[0]))
        if address is not None:
            addresses.append(address)
    return addresses
