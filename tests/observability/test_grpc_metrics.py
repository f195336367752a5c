"""Every gRPC server counts its calls by method and status code (services.common.metrics)."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from services.common.server import GrpcServer
from services.common.settings import CommonSettings


def handled(method: str, code: str) -> float:
    labels = {"grpc_service": "grpc.health.v1.Health", "grpc_method": method, "grpc_code": code}
    return REGISTRY.get_sample_value("hooks_grpc_server_handled_total", labels) or 0.0


async def test_calls_that_fail_are_counted_by_their_code():
    server = GrpcServer("probe", CommonSettings(), [])
    port = await server.start("127.0.0.1:0")
    before = handled("Check", "NOT_FOUND")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="no.such.Service")
                )
            assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await server.stop(0)
    assert handled("Check", "NOT_FOUND") == before + 1


async def test_calls_answered_ok_are_counted_too():
    server = GrpcServer("probe", CommonSettings(), [])
    port = await server.start("127.0.0.1:0")
    before = handled("Check", "OK")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    finally:
        await server.stop(0)
    assert handled("Check", "OK") == before + 1
