"""The gateway's settings (HOOKS_GATEWAY_*), besides the shared ones (targets of the services it fronts)."""

from __future__ import annotations

from pathlib import Path

from services.common.settings import CommonSettings

#: The repository's protos/ folder, where the OpenAPI document's descriptions come from.
DEFAULT_PROTOS_DIR = Path(__file__).resolve().parent.parent / "protos"


class GatewaySettings(CommonSettings):
    #: Where the gateway serves HTTP (host:port).
    gateway_listen_address: str = "127.0.0.1:8080"
    #: Largest request body accepted, in bytes; larger ones get 413.
    gateway_max_body_bytes: int = 1024 * 1024
    #: Largest `page_size` accepted on list calls; larger ones get 400.
    gateway_max_page_size: int = 1000
    #: Deadline of each unary call to a service, in seconds.
    gateway_call_timeout_seconds: float = 30.0
    #: Seconds between keep-alive comments on a Server-Sent Events stream.
    gateway_keepalive_seconds: float = 15.0
    #: How long /readyz waits for each service's health answer, in seconds.
    gateway_readiness_timeout_seconds: float = 2.0
    #: Folder of the .proto files whose comments describe the OpenAPI document; empty: the repository's protos/.
    gateway_protos_dir: str = ""

    def protos_dir(self) -> Path:
        return Path(self.gateway_protos_dir) if self.gateway_protos_dir else DEFAULT_PROTOS_DIR
