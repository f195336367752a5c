"""The sender's settings (environment variables HOOKS_SENDER_*), validated at start."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import PositiveInt

from services.common.email_domains import EmailDomainSettings
from services.common.network_policy import AllowedNetworkSettings
from services.common.settings import SENDER_ADDRESS, CommonSettings, checked_by
from services.sender.durations import parse_duration, parse_rate, parse_schedule


class SenderSettings(CommonSettings, EmailDomainSettings, AllowedNetworkSettings):
    RENAMED: ClassVar[dict[str, str]] = {
        "sender_attempt_timeout": "sender_attempt_timeout_seconds",
        "sender_poll_interval": "sender_poll_interval_seconds",
        "sender_lease": "sender_lease_seconds",
        "sender_max_retry_after": "sender_max_retry_after_seconds",
    }

    #: Address the sender's gRPC server listens on.
    sender_listen_address: str = SENDER_ADDRESS
    #: The sender's database (its delivery queue and attempt log): sqlite:///path or postgresql://...
    sender_database_url: str = "sqlite:///var/sender.db"
    #: Delays between attempts after the first, comma-separated (ms, s, m, h, d); ±20% jitter is added.
    sender_retry_schedule: Annotated[str, checked_by(parse_schedule)] = "5s,5m,30m,2h,5h,10h,10h"
    #: An endpoint whose deliveries fail without a success for this long is disabled (e.g. 5d, 12h).
    sender_disable_after: Annotated[str, checked_by(parse_duration)] = "5d"
    #: Seconds one HTTP attempt may take, connection included, before it counts as a timeout (formerly HOOKS_SENDER_ATTEMPT_TIMEOUT, still read for one release).
    sender_attempt_timeout_seconds: float = 15.0
    #: Most attempts in flight at once, over all endpoints.
    sender_concurrency: int = 64
    #: Most attempts in flight at once to one endpoint, so a slow endpoint cannot hold up the others.
    sender_per_endpoint_concurrency: int = 8
    #: Seconds between looks in the database for retries that came due and deliveries whose lease expired (formerly HOOKS_SENDER_POLL_INTERVAL, still read for one release).
    sender_poll_interval_seconds: float = 1.0
    #: Seconds a sender's lease of a delivery lasts; renewed while held, so a killed sender's deliveries come back after it (formerly HOOKS_SENDER_LEASE, still read for one release).
    sender_lease_seconds: float = 15.0
    #: Seconds between renewals of the leases a sender holds (one statement each time); at most a quarter of the lease.
    sender_lease_renewal_seconds: float = 5.0
    #: Most deliveries a sender holds in memory for one endpoint (its lane); beyond, they wait in the database.
    sender_lane_backlog: PositiveInt = 256
    #: Consecutive failed attempts to an endpoint that open its circuit breaker (then only probes are sent).
    sender_breaker_failures: PositiveInt = 10
    #: Or: the share of failed attempts over the breaker's window that opens it (with at least 20 attempts in it).
    sender_breaker_failure_ratio: float = 0.5
    #: Seconds of attempts the breaker's failure ratio is taken over.
    sender_breaker_window_seconds: float = 30.0
    #: Seconds before an open breaker's first probe; doubled after each failed probe.
    sender_breaker_probe_seconds: float = 1.0
    #: Longest wait between an open breaker's probes, in seconds.
    sender_breaker_max_probe_seconds: float = 60.0
    #: Longest wait a Retry-After answer may impose, in seconds (formerly HOOKS_SENDER_MAX_RETRY_AFTER, still read for one release).
    sender_max_retry_after_seconds: float = 3600.0
    #: Seconds a finished (succeeded or failed) delivery and its attempts are kept, then pruned; default 30 days.
    sender_retention_seconds: float = 30 * 86400.0
    #: Seconds between the pruner's passes over finished deliveries.
    sender_retention_interval_seconds: float = 60.0
    #: Deliveries the pruner deletes per transaction (small, so the hot path never waits long behind it).
    sender_retention_batch: int = 500
    #: Most WatchDeliveries streams one account may have open at once (on one sender); beyond, RESOURCE_EXHAUSTED.
    sender_watch_streams_per_account: PositiveInt = 10
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
    #: E-mails one account may be sent per period, as count/duration (e.g. 100/1h, 20/1m), by each sender replica; beyond it they wait for a free slot, in turn, without counting as attempts. Empty: no limit.
    sender_email_rate_limit: Annotated[str, checked_by(parse_rate)] = "100/1h"

    @property
    def retry_delays(self) -> tuple[float, ...]:
        return parse_schedule(self.sender_retry_schedule)

    @property
    def disable_after_seconds(self) -> float:
        return parse_duration(self.sender_disable_after)

    @property
    def email_rate_limit(self) -> tuple[int, float] | None:
        """(e-mails, per seconds), or None for no limit."""
        return parse_rate(self.sender_email_rate_limit)
