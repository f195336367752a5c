"""`python -m services.matcher`: serve MatcherService and consume hooks.outbox until SIGTERM."""

from __future__ import annotations

import asyncio

from services.common.logging import configure_logging
from services.matcher.server import build_server
from services.matcher.settings import MatcherSettings


async def main() -> None:
    settings = MatcherSettings()
    configure_logging(settings.log_level, settings.log_format)
    server = await build_server(settings)
    await server.start(settings.matcher_listen_address)
    await server.wait()


if __name__ == "__main__":
    asyncio.run(main())
