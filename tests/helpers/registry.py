"""A real registry for any test: `async with running_registry(database_url) as (server, port): ...`

It migrates the database, registers the built-in `hooks` application, and serves on 127.0.0.1:<port>
until the block ends. Talk to it with services.common.channels.channel(f"127.0.0.1:{port}").
Settings may be overridden by keyword, e.g. registry_change_poll_seconds=0.05.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.common.server import GrpcServer
from services.registry.server import build_server
from services.registry.settings import RegistrySettings


@asynccontextmanager
async def running_registry(database_url: str, **settings) -> AsyncIterator[tuple[GrpcServer, int]]:
    server = await build_server(
        RegistrySettings(registry_database_url=database_url, shutdown_grace_seconds=0.5, **settings)
    )
    port = await server.start("127.0.0.1:0")
    try:
        yield server, port
    finally:
        await server.stop(0.5)
