"""python -m services.sender: the delivery queue and its workers, on HOOKS_SENDER_LISTEN_ADDRESS."""

from __future__ import annotations

import asyncio

from services.common.logging import configure_logging
from services.sender.server import build_server
from services.sender.settings import SenderSettings


async def main() -> None:
    settings = SenderSettings()
    configure_logging(settings.log_level, settings.log_format)
    server = await build_server(settings)
    await server.start(settings.sender_listen_address)
    await server.wait()


if __name__ == "__main__":
    asyncio.run(main())
