"""Running the gateway's app on a socket: `python -m gateway`, the tests and the benchmark share it.

    server = GatewayServer(build_app(settings))
    port = await server.start("127.0.0.1:0")   # port 0 picks a free one
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from services.common.logging import get_logger

log = get_logger(__name__)


class GatewayServer:
    def __init__(self, app: web.Application, shutdown_grace_seconds: float = 10.0):
        self.app = app
        self.grace = shutdown_grace_seconds
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, address: str) -> int:
        host, _, port = address.rpartition(":")
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=self.grace)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]") or None, int(port))
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("gateway started", address=host, port=self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("gateway stopped")

    async def wait(self) -> None:
        """Serves until SIGTERM or SIGINT, then lets in-flight requests finish."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.stop()
