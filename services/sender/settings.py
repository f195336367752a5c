"""The sender's settings (environment variables HOOKS_SENDER_*), validated at start."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import field_validator

from services.common.settings import CommonSettings
from services.sender.durations import parse_duration, parse_schedule


class SenderSettings(CommonSettings):
    #: Address the sender's gRPC server listens on.
    sender_listen_address: str = "127.0.0.1:50052"
    #: The sender's database (its delivery queue and attempt log): sqlite:///path or postgresql://...
    sender_database_url: str = "sqlite:///var/sender.db"
    #: Delays between attempts after the first, comma-separated (ms, s, m, h, d); ±20% jitter is added.
    sender_retry_schedule: str = "5s,5m,30m,2h,5h,10h,10h"
    #: An endpoint whose deliveries fail without a success for this long is disabled (e.g. 5d, 12h).
    sender_disable_after: str = "5d"
    #: Seconds one HTTP attempt may take, connection included, before it counts as a timeout.
    sender_attempt_timeout: float = 15.0
    #: Most attempts in flight at once, over all endpoints.
    sender_concurrency: int = 64
    #: Most attempts in flight at once to one endpoint, so a slow endpoint cannot hold up the others.
    sender_per_endpoint_concurrency: int = 8
    #: CIDRs deliveries may reach although private, loopback or link-local (e.g. 10.0.0.0/8); empty: none.
    sender_allowed_networks: str = ""
    #: Seconds between looks in the database for retries that came due and deliveries whose lease expired.
    sender_poll_interval: float = 1.0
    #: Seconds a sender holds a delivery it works on; a crashed sender's deliveries come back after it.
    sender_lease: float = 120.0
    #: Longest wait a Retry-After answer may impose, in seconds.
    sender_max_retry_after: float = 3600.0
    #: SMTP server e-mail endpoints are sent through.
    sender_smtp_host: str = "127.0.0.1"
    #: Its port.
    sender_smtp_port: int = 25
    #: The From address of notification e-mails.
    sender_smtp_from: str = "hooks@localhost"
    #: SMTP user name; empty sends without authentication.
    sender_smtp_username: str = ""
    #: SMTP password (with the user name).
    sender_smtp_password: str = ""
    #: "none", "starttls" or "tls" (implicit TLS, usually port 465).
    sender_smtp_tls: Literal["none", "starttls", "tls"] = "none"

    @field_validator("sender_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("sender_disable_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("sender_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)
        return value

    @property
    def retry_delays(self) -> tuple[float, ...]:
        return parse_schedule(self.sender_retry_schedule)

    @property
    def disable_after_seconds(self) -> float:
        return parse_duration(self.sender_disable_after)

    @property
    def allowed_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [
            ipaddress.ip_network(part.strip(), strict=False)
            for part in self.sender_allowed_networks.split(",")
            if part.strip()
        ]
