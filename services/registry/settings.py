"""The registry's settings, from HOOKS_ environment variables."""

from __future__ import annotations

from pydantic import NonNegativeFloat, PositiveInt

from services.common.email_domains import EmailDomainSettings
from services.common.network_policy import AllowedNetworkSettings
from services.common.settings import REGISTRY_ADDRESS, CommonSettings


class RegistrySettings(CommonSettings, EmailDomainSettings, AllowedNetworkSettings):
    #: Where the registry's gRPC server listens.
    registry_listen_address: str = REGISTRY_ADDRESS
    #: The registry's database: sqlite:///path or postgresql://user@host/db.
    registry_database_url: str = "sqlite:///var/registry.db"
    #: Seconds between change-log polls (every poll on SQLite; a safety net beside LISTEN/NOTIFY on PostgreSQL).
    registry_change_poll_seconds: float = 0.25
    #: Seconds a change stays in the change log before it is pruned.
    registry_change_retention_seconds: float = 86400.0
    #: Seconds between prunings of the change log.
    registry_change_prune_interval_seconds: float = 600.0
    #: How many accounts' routing tables ResolveRoutes keeps in memory (least recently used dropped first).
    registry_route_cache_accounts: int = 100_000
    #: Most endpoints one account may have; creating more answers RESOURCE_EXHAUSTED (HTTP 429).
    registry_max_endpoints_per_account: PositiveInt = 1000
    #: Most filters one account may have; creating more answers RESOURCE_EXHAUSTED (HTTP 429).
    registry_max_filters_per_account: PositiveInt = 1000
    #: Most endpoints one filter may trigger; more answers RESOURCE_EXHAUSTED (HTTP 429).
    registry_max_endpoints_per_filter: PositiveInt = 100
    #: Seconds a rotated (replaced) signing secret keeps signing deliveries beside the new one, so receivers can switch without missing one; 0: it stops at once.
    registry_secret_rotation_grace_seconds: NonNegativeFloat = 86400.0
