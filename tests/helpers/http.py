"""Real HTTP receivers on loopback for tests.

async with serving(app) as port: ...                     # any aiohttp app
async with receiving(Receiver()) as receiver: ...        # a recorder whose `handle` answers POSTs
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

from aiohttp import web


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, ssl_context: ssl.SSLContext | None = None, *, access_log: bool = True
) -> AsyncIterator[int]:
    """Serves `app` on 127.0.0.1 on a free port (over TLS with `ssl_context`; without aiohttp's access
    log when `access_log` is False); yields the port, stops the server after."""
    runner = web.AppRunner(app, shutdown_timeout=0.5, **({} if access_log else {"access_log": None}))
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
async def receiving(
    receiver: R, path: str = "/{name}", client_max_size: int = 1024**2, *, access_log: bool = True
) -> AsyncIterator[R]:
    """Serves `receiver.handle` for POST `path` on 127.0.0.1 (its `port` set) until the block ends."""
    app = web.Application(client_max_size=client_max_size)
    app.router.add_post(path, receiver.handle)
    async with serving(app, access_log=access_log) as receiver.port:
        yield receiver


@dataclass(frozen=True)
class Received:
    """A request a recorder answered: its path, headers, raw body, and when it arrived (time.monotonic())."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Served:
    """`receiving` as start() and stop(), for a recorder that outlives one block: a subclass is served
    (its `handle`, for POST `path`) on 127.0.0.1 from start() until stop()."""

    path = "/{tail:.*}"
    port: int = 0
    _served: contextlib.AsyncExitStack | None = None

    async def start(self) -> Self:
        self._served = contextlib.AsyncExitStack()
        await self._served.enter_async_context(receiving(self, self.path, access_log=False))  # type: ignore[arg-type]
        return self

    async def stop(self) -> None:
        if self._served is not None:
            await self._served.aclose()
            self._served = None
