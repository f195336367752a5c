"""Real HTTP receivers on loopback for tests.

async with serving(app) as port: ...                     # any aiohttp app
async with receiving(Receiver()) as receiver: ...        # a recorder whose `handle` answers POSTs
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable
from typing import Protocol, TypeVar

from aiohttp import web


@contextlib.asynccontextmanager
async def serving(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """Serves `app` on 127.0.0.1 on a free port (over TLS with `ssl_context`); yields the port, stops
    the server after."""
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


class Recorder(Protocol):
    """What `receiving` serves: an aiohttp handler for POSTs, and the port it is told it serves on."""

    port: int

    def handle(self, request: web.Request) -> Awaitable[web.StreamResponse]: ...


R = TypeVar("R", bound=Recorder)


@contextlib.asynccontextmanager
async def receiving(receiver: R, path: str = "/{name}", client_max_size: int = 1024**2) -> AsyncIterator[R]:
    """Serves `receiver.handle` for POST `path` on 127.0.0.1 (its `port` set) until the block ends."""
    app = web.Application(client_max_size=client_max_size)
    app.router.add_post(path, receiver.handle)
    async with serving(app) as receiver.port:
        yield receiver
