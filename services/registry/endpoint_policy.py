"""What the operator decides for every account's endpoints (registry settings), applied when they are
written: which domains e-mail endpoints may send to, which addresses the other endpoints' targets
may be at, and how long a replaced signing secret keeps signing beside the new one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from services.common.email_domains import RecipientDomains
from services.common.network_policy import NetworkPolicy
from services.registry.settings import RegistrySettings

#: The Standard Webhooks / Svix grace period of a rotated secret.
DEFAULT_ROTATION_GRACE = timedelta(hours=24)


@dataclass(frozen=True)
class EndpointPolicy:
    #: The domains an e-mail endpoint's target may be at (services.common.email_domains).
    email_domains: RecipientDomains = RecipientDomains()
    #: The addresses an HTTP target may be at (services.common.network_policy; the sender's own).
    networks: NetworkPolicy = field(default_factory=NetworkPolicy)
    #: How long a replaced signing secret keeps signing deliveries beside the new one (0: not at all).
    rotation_grace: timedelta = DEFAULT_ROTATION_GRACE

    @classmethod
    def of(cls, settings: RegistrySettings) -> EndpointPolicy:
        return cls(
            email_domains=settings.email_domains,
            networks=settings.network_policy,
            rotation_grace=timedelta(seconds=settings.registry_secret_rotation_grace_seconds),
        )
