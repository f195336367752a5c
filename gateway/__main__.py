"""`python -m gateway`: serves the HTTP API on HOOKS_GATEWAY_LISTEN_ADDRESS, and its /metrics on
HOOKS_METRICS_ADDRESS:HOOKS_METRICS_PORT (when the port is not 0), until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from gateway.app import build_app
from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from services.common.logging import configure_logging


async def serve(settings: GatewaySettings) -> None:
    app = build_app(settings, metrics_registry=REGISTRY)
    server = GatewayServer(app, settings.shutdown_grace_seconds)
    metrics = f"{settings.metrics_address}:{settings.metrics_port}" if settings.metrics_port else None
    await server.start(settings.gateway_listen_address, metrics_address=metrics)
    await server.wait()


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
