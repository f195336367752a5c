"""`python -m services.registry`: serves the registry on HOOKS_REGISTRY_LISTEN_ADDRESS until SIGTERM."""

from __future__ import annotations

import asyncio

from services.common.logging import configure_logging
from services.registry.server import build_server
from services.registry.settings import RegistrySettings


async def main() -> None:
    settings = RegistrySettings()
    configure_logging(settings.log_level, settings.log_format)
    server = await build_server(settings)
    await server.start(settings.registry_listen_address)
    await server.wait()


if __name__ == "__main__":
    asyncio.run(main())
