"""The gateway's settings (HOOKS_GATEWAY_*), besides the shared ones (targets of the services it fronts)."""

from __future__ import annotations

from services.common.settings import CommonSettings


class GatewaySettings(CommonSettings):
    #: Where the gateway serves HTTP (host:port).
    gateway_listen_address: str = "127.0.0.1:8080"
    #: Largest request body accepted, in bytes; larger ones get 413.
    gateway_max_body_bytes: int = 1024 * 1024
    #: Deadline of each unary call to a service, in seconds.
    gateway_call_timeout_seconds: float = 30.0
    #: Seconds between keep-alive comments on a Server-Sent Events stream.
    gateway_keepalive_seconds: float = 15.0
    #: How long /readyz waits for each service's health answer, in seconds.
    gateway_readiness_timeout_seconds: float = 2.0
    #: Development mode, which `hooks run` (make run) turns on: the console at /console/ offers a sign-in
    #: that picks an account and sends an x-rh-identity it builds. Off in production, where the platform's
    #: proxy adds x-rh-identity to each request.
    gateway_development: bool = False
