"""Prometheus metrics every service shares: the /metrics listener and gRPC server metrics.

Service-specific metrics (messages consumed, deliveries by outcome, queue depth...) are defined in
each service's own metrics module with prometheus_client, on the default registry.
"""

from __future__ import annotations

import time

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


def serve_metrics(port: int, address: str = "0.0.0.0") -> None:
    """Starts the /metrics listener once per process (port 0: off)."""
    if port and port not in _started_ports:
        start_http_server(port, addr=address)
        _started_ports.add(port)


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2) if method.count("/") >= 2 else ("", "unknown", method)
    return service, name


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call by method and code; times unary calls."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, method = _split(handler_call_details.method)

        def code_of(context) -> str:
            code = context.code()
            if code is None:
                return "OK"
            return code.name if isinstance(code, grpc.StatusCode) else str(code)

        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary_unary(request, context):
                start = time.perf_counter()
                try:
                    return await inner(request, context)
                except BaseException:
                    if context.code() is None:
                        GRPC_HANDLED.labels(service, method, "UNKNOWN").inc()
                    else:
                        GRPC_HANDLED.labels(service, method, code_of(context)).inc()
                    raise
                else:
                    GRPC_HANDLED.labels(service, method, code_of(context)).inc()
                finally:
                    GRPC_LATENCY.labels(service, method).observe(time.perf_counter() - start)

            return handler._replace(unary_unary=unary_unary)
        return handler
