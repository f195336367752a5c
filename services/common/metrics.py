"""Prometheus metrics every service shares: the /metrics listener and gRPC server metrics.

Service-specific metrics (messages consumed, deliveries by outcome, queue depth...) are defined in
each service's own metrics module with prometheus_client, on the default registry.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
from prometheus_client import Counter, Histogram, start_http_server

from services.common.interceptors import BehaviourInterceptor, Rpc, StreamedResponse, UnaryResponse

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


class MetricsInterceptor(BehaviourInterceptor):
    """Counts every call by method and code when it ends; times unary calls."""

    def wrap_unary_response(self, behaviour: UnaryResponse, rpc: Rpc) -> UnaryResponse:
        service, method = _split(rpc.method)

        async def timed(request_or_iterator: object, context: grpc.aio.ServicerContext) -> object:
            start = time.perf_counter()
            failed = True
            try:
                response = await behaviour(request_or_iterator, context)
                failed = False
                return response
            finally:
                GRPC_HANDLED.labels(service, method, _code_of(context, failed)).inc()
                GRPC_LATENCY.labels(service, method).observe(time.perf_counter() - start)

        return timed

    def wrap_streamed_response(self, behaviour: StreamedResponse, rpc: Rpc) -> StreamedResponse:
        service, method = _split(rpc.method)

        async def counted(request_or_iterator: object, context: grpc.aio.ServicerContext) -> AsyncIterator[object]:
            failed = True
            try:
                async for response in behaviour(request_or_iterator, context):
                    yield response
                failed = False
            finally:
                GRPC_HANDLED.labels(service, method, _code_of(context, failed)).inc()

        return counted
