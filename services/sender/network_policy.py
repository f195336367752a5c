"""The SSRF guard at delivery time: the sender connects only to addresses the operator's
`services.common.network_policy.NetworkPolicy` allows, judged on what a host name resolved to right
before connecting (`GuardedConnector`), so DNS that changed since the registry judged the target,
or tricks that point a public name at an inner address, are caught too. The tenant is told only
"target address not allowed" (the delivery's error); what the name resolved to and why it was
refused goes to the log, for operators.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.tracing import Trace

from services.common.logging import get_logger
from services.common.network_policy import NetworkPolicy

log = get_logger(__name__)

#: What a tenant sees when its target resolves only to refused addresses.
REFUSED_TEXT = "target address not allowed"


class AddressRefused(OSError):
    """The target resolved only to addresses deliveries may not reach. Its text is what the tenant
    sees (`REFUSED_TEXT`); `detail` says which addresses and why, for the log."""

    def __init__(self, detail: str):
        super().__init__(REFUSED_TEXT)
        self.detail = detail


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
