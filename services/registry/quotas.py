"""Tenant quotas: how much one account may keep in the registry.

Each account's enabled filters and endpoints are a routing table held in memory and scanned on every
ResolveRoutes of that account, and every endpoint a filter triggers is one delivery per matching
event; these limits keep one tenant from growing them, or the database, without bound. The defaults
(settings: 1000 endpoints and 1000 filters per account, 100 endpoints per filter) are far above what
a team routes its notifications with, while bounding the scan of one ResolveRoutes to 1000 filters
and the answer to 1000 routes.

The counts are taken inside the write transaction, and registry writes are serialised
(services.registry.database), so concurrent creates can never overshoot a limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import QuotaExceeded
from services.registry.models import Endpoint, Filter
from services.registry.settings import RegistrySettings


@dataclass(frozen=True)
class Quotas:
    endpoints_per_account: int
    filters_per_account: int
    endpoints_per_filter: int

    @classmethod
    def of(cls, settings: RegistrySettings) -> Quotas:
        return cls(
            endpoints_per_account=settings.registry_max_endpoints_per_account,
            filters_per_account=settings.registry_max_filters_per_account,
            endpoints_per_filter=settings.registry_max_endpoints_per_filter,
        )

    async def check_new_endpoint(self, session: AsyncSession, account_id: str) -> None:
        """Raises QuotaExceeded when the account already has as many endpoints as it may."""
        count = (
            await session.scalar(select(func.count()).select_from(Endpoint).where(Endpoint.account_id == account_id))
            or 0
        )
        if count >= self.endpoints_per_account:
            raise QuotaExceeded(
                "endpoints_per_account",
                f"an account may have at most {self.endpoints_per_account} endpoints; delete one before creating another",
            )

    async def check_new_filter(self, session: AsyncSession, account_id: str) -> None:
        """Raises QuotaExceeded when the account already has as many filters as it may."""
        count = (
            await session.scalar(select(func.count()).select_from(Filter).where(Filter.account_id == account_id)) or 0
        )
        if count >= self.filters_per_account:
            raise QuotaExceeded(
                "filters_per_account",
                f"an account may have at most {self.filters_per_account} filters; delete one before creating another",
            )

    def check_endpoints_of_filter(self, count: int) -> None:
        """Raises QuotaExceeded when a filter would trigger more endpoints than it may."""
        if count > self.endpoints_per_filter:
            raise QuotaExceeded(
                "endpoints_per_filter",
                f"a filter may trigger at most {self.endpoints_per_filter} endpoints (this one names {count}); "
                "split it into several filters",
            )
