"""Prometheus metrics every service shares: the /metrics listener and gRPC server metrics.

Service-specific metrics (messages consumed, deliveries by outcome, queue depth...) are defined in
each service's own metrics module with prometheus_client, on the default registry.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from prometheus_client import Counter, Histogram, start_http_server

GRPC_HANDLED = Counter(
    "hooks_grpc_server_handled_total",
    "gRPC calls completed by the server, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_LATENCY = Histogram(
    "hooks_grpc_server_handling_seconds",
    "Time the server took to answer a unary call, by method.",
    ["grpc_service", "grpc_method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_started_ports: set[int] = set()


def serve_metrics(port: int, address: str) -> None:
    """Starts the /metrics listener on `address` (HOOKS_METRICS_ADDRESS, loopback unless a scraper
    elsewhere needs it) once per process (port 0: off)."""
    if port and port not in _started_ports:
        start_http_server(port, addr=address)
        _started_ports.add(port)


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2) if method.count("/") >= 2 else ("", "unknown", method)
    return service, name


def _code_of(context: grpc.aio.ServicerContext, failed: bool) -> str:
    code = context.code()
    if code is None:
        return "UNKNOWN" if failed else "OK"
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call by method and code when it ends; times unary calls."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, method = _split(handler_call_details.method)

        def count(context: grpc.aio.ServicerContext, failed: bool) -> None:
            GRPC_HANDLED.labels(service, method, _code_of(context, failed)).inc()

        if handler.unary_unary or handler.stream_unary:
            kind = "unary_unary" if handler.unary_unary else "stream_unary"
            inner = getattr(handler, kind)

            async def unary_response(request_or_iterator: object, context: grpc.aio.ServicerContext) -> object:
                start = time.perf_counter()
                failed = True
                try:
                    response = await inner(request_or_iterator, context)
                    failed = False
                    return response
                finally:
                    count(context, failed)
                    GRPC_LATENCY.labels(service, method).observe(time.perf_counter() - start)

            return handler._replace(**{kind: unary_response})

        kind = "unary_stream" if handler.unary_stream else "stream_stream"
        inner = getattr(handler, kind)

        async def streamed_response(
            request_or_iterator: object, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[object]:
            # A streaming handler is an async generator, or a coroutine that calls context.write().
            failed = True
            try:
                result = inner(request_or_iterator, context)
                if inspect.isawaitable(result):
                    await result
                else:
                    async for response in result:
                        yield response
                failed = False
            finally:
                count(context, failed)

        return handler._replace(**{kind: streamed_response})
