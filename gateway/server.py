"""Running the gateway's app on a socket: `python -m gateway`, the tests and the benchmark share it.

server = GatewayServer(build_app(settings))
port = await server.start("127.0.0.1:0")   # port 0 picks a free one
# or with /metrics on a port of its own: server.start("127.0.0.1:0", metrics_address="127.0.0.1:0")
...
await server.stop()
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from gateway.app import build_metrics_app
from services.common.bounds import MAX_ENDPOINT_ID, MAX_STATS_ENDPOINTS
from services.common.logging import get_logger

log = get_logger(__name__)

#: Longest request line (method, path and query string) accepted, in bytes: the longest the API's
#: document allows, a BatchGetEndpointStats of its most endpoint ids, each of the most characters,
#: each percent-encoded from 4 UTF-8 bytes (12 bytes), as `endpointIds=...&`, with room for the rest.
#: aiohttp's default (8 KiB) would refuse even 1000 short ids, answering in plain text, not JSON.
MAX_REQUEST_LINE_BYTES = MAX_STATS_ENDPOINTS * (len("endpointIds=&") + 12 * MAX_ENDPOINT_ID) + 8 * 1024


class GatewayServer:
    def __init__(self, app: web.Application, shutdown_grace_seconds: float = 10.0):
        self.app = app
        self.grace = shutdown_grace_seconds
        self._runner: web.AppRunner | None = None
        self._metrics_runner: web.AppRunner | None = None
        self.port: int | None = None
        self.metrics_port: int | None = None

    async def start(self, address: str, metrics_address: str | None = None) -> int:
        """Serves the app on `address` and, when given, its /metrics on `metrics_address` (host:port)."""
        self._runner = await self._serve(self.app, address)
        self.port = self._runner.addresses[0][1]
        if metrics_address is not None:
            self._metrics_runner = await self._serve(build_metrics_app(self.app), metrics_address)
            self.metrics_port = self._metrics_runner.addresses[0][1]
        log.info("gateway started", address=address.rpartition(":")[0], port=self.port, metrics_port=self.metrics_port)
        return self.port

    async def _serve(self, app: web.Application, address: str) -> web.AppRunner:
        host, _, port = address.rpartition(":")
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=self.grace,
            max_line_size=MAX_REQUEST_LINE_BYTES,
        )
        await runner.setup()
        await web.TCPSite(runner, host.strip("[]") or None, int(port)).start()
        return runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("gateway stopped")
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
            self._metrics_runner = None

    async def wait(self) -> None:
        """Serves until SIGTERM or SIGINT, then lets in-flight requests finish."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.stop()
