"""`python -m gateway`: serves the HTTP API on HOOKS_GATEWAY_LISTEN_ADDRESS until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from gateway.app import build_app
from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from services.common.logging import configure_logging
from services.common.metrics import serve_metrics


async def serve(settings: GatewaySettings) -> None:
    app = build_app(settings, metrics_registry=REGISTRY)
    server = GatewayServer(app, settings.shutdown_grace_seconds)
    await server.start(settings.gateway_listen_address)
    serve_metrics(settings.metrics_port)
    await server.wait()


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
