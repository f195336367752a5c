"""/healthz (the gateway process answers) and /readyz (the services it fronts answer SERVING).

Readiness asks each fronted gRPC service by its full name over grpc.health.v1, so a 503 names
exactly which service is not ready; liveness never depends on them (a service being down must not
get the gateway restarted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


async def check_services(services: Mapping[str, grpc.aio.Channel], timeout: float) -> dict[str, str]:
    """Each service's health status name (SERVING, NOT_SERVING, UNAVAILABLE...)."""

    async def check(name: str, channel: grpc.aio.Channel) -> tuple[str, str]:
        try:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=name), timeout=timeout
            )
        except grpc.aio.AioRpcError as error:
            return name, error.code().name
        return name, health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)

    results = await asyncio.gather(*(check(name, channel) for name, channel in services.items()))
    return dict(sorted(results))
