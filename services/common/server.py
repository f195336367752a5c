"""What every gRPC server of hooks has: health, reflection, interceptors, and a SIGTERM drain.

    server = GrpcServer("registry", settings, [(add_XServicer_to_server, servicer, SERVICE_NAME)])
    port = await server.start("127.0.0.1:0")   # tests: port 0 picks a free one
    await server.wait()                        # until SIGTERM/SIGINT (or server.stop())
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.logging import get_logger
from services.common.metrics import MetricsInterceptor, serve_metrics
from services.common.settings import CommonSettings

log = get_logger(__name__)

# (add_XServicer_to_server, servicer instance, full service name)
Registration = tuple[Callable[[Any, grpc.aio.Server], None], Any, str]


class RequestContextInterceptor(grpc.aio.ServerInterceptor):
    """Binds a request id and the method to the log context of each call; logs failures."""

    async def intercept_service(self, continuation, handler_call_details):
        request_id = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "x-request-id":
                request_id = value
                break
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=request_id or uuid.uuid4().hex[:16], method=handler_call_details.method
        )
        return await continuation(handler_call_details)


class GrpcServer:
    def __init__(
        self,
        name: str,
        settings: CommonSettings,
        registrations: Sequence[Registration],
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        on_stop: Sequence[Callable[[], Awaitable[None]]] = (),
    ):
        self.name = name
        self.settings = settings
        self.registrations = list(registrations)
        self.health = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        self._interceptors = [RequestContextInterceptor(), MetricsInterceptor(), *interceptors]
        self._on_stop = list(on_stop)
        self._server: grpc.aio.Server | None = None
        self._stopped = asyncio.Event()
        self.port: int | None = None

    async def start(self, address: str) -> int:
        size = self.settings.grpc_max_message_bytes
        self._server = grpc.aio.server(
            interceptors=self._interceptors,
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
                ("grpc.so_reuseport", 0),
                # Clients re-resolve DNS only when a connection ends: recycling connections lets
                # a matcher find sender replicas added since it connected.
                ("grpc.max_connection_age_ms", 5 * 60 * 1000),
                ("grpc.max_connection_age_grace_ms", 30 * 1000),
            ],
        )
        names = []
        for add, servicer, service_name in self.registrations:
            add(servicer, self._server)
            names.append(service_name)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        names += [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self._server)
        self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise RuntimeError(f"{self.name}: cannot listen on {address}")
        await self._server.start()
        serve_metrics(self.settings.metrics_port)
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("server started", service=self.name, address=address.rsplit(":", 1)[0], port=self.port)
        return self.port

    async def _set_health(self, status: int) -> None:
        names = ["", *[name for _, _, name in self.registrations]]
        for name in names:
            result = self.health.set(name, status)
            if asyncio.iscoroutine(result):
                await result

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first (so balancers stop sending), then drain in-flight calls."""
        if self._server is None or self._stopped.is_set():
            return
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        log.info("server draining", service=self.name, grace_seconds=grace)
        for hook in self._on_stop:
            await hook()
        await self._server.stop(grace)
        self._stopped.set()
        log.info("server stopped", service=self.name)

    async def wait(self) -> None:
        """Serves until SIGTERM or SIGINT, then drains."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(stop.wait())
        stopped = asyncio.create_task(self._stopped.wait())
        await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopped.cancel()
        await self.stop()
