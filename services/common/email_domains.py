"""The operator's e-mail relay policy on recipients: which domains e-mail endpoints may send to.

E-mail goes out through the operator's SMTP relay with content tenants control, so the operator says
where it may go (HOOKS_EMAIL_ALLOWED_DOMAINS; default: anywhere). The registry and the sender read the
same setting: the registry refuses an e-mail endpoint whose target is elsewhere when it is written
(INVALID_ARGUMENT naming `endpoint.target`); the sender checks again when it sends, so a policy
narrowed later applies to endpoints made before it. (The per-account rate limit is the sender's:
services/sender/email_policy.py.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")


@dataclass(frozen=True)
class RecipientDomains:
    """Allowed recipient domains, lower case; each allows itself and its subdomains. Empty: any."""

    domains: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> RecipientDomains:
        """From a comma-separated list; ValueError naming an entry that is not a domain name."""
        domains = []
        for part in text.split(","):
            domain = part.strip().lower()
            if not domain:
                continue
            if not _DOMAIN.fullmatch(domain) or len(domain) > 253:
                raise ValueError(
                    f"not a domain name: {part.strip()!r} (give e.g. example.com, which allows its subdomains too)"
                )
            domains.append(domain)
        return cls(tuple(domains))

    def allows(self, address: str) -> bool:
        """Whether e-mail may go to `address` (an addr-spec such as ops@example.com)."""
        if not self.domains:
            return True
        domain = address.rpartition("@")[2].lower()
        return any(domain == allowed or domain.endswith("." + allowed) for allowed in self.domains)

    @staticmethod
    def refusal(address: str) -> str:
        """What a tenant is told about a recipient the policy refuses (not the list: the operator's)."""
        return f"e-mail to {address.rpartition('@')[2]!r} is not allowed here: the operator allows only some recipient domains"


class EmailDomainSettings(BaseSettings):
    """The setting, read by the registry and the sender (their settings classes derive from this one)."""

    model_config = SettingsConfigDict(env_prefix="HOOKS_", extra="ignore", frozen=True)

    #: Recipient domains e-mail endpoints may send to, comma-separated; each allows its subdomains too (example.com: ops@example.com, ops@eu.example.com). Checked when an endpoint is written and again when sending. Empty: any.
    email_allowed_domains: str = ""

    @field_validator("email_allowed_domains")
    @classmethod
    def _domains(cls, value: str) -> str:
        RecipientDomains.parse(value)
        return value

    @property
    def email_domains(self) -> RecipientDomains:
        return RecipientDomains.parse(self.email_allowed_domains)
