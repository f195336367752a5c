"""What the gateway's tests share besides fixtures: identities, a gateway on a real socket, paths.

async with running_gateway(GatewaySettings(registry_target=...)) as client:   # an httpx client
    await client.get("/api/hooks/v1/endpoints", headers=identity("acct-1"))
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway.app import build_app
from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from services.common.identity import IDENTITY_HEADER, encode_identity, parse_identity

ROOT = Path(__file__).resolve().parents[2]
#: The test-only protos (the Echo service) the gateway's tests compile.
TEST_PROTOS = ROOT / "tests" / "gateway" / "protos"


def identity(account: str = "acct-1") -> dict[str, str]:
    return {IDENTITY_HEADER: encode_identity(account)}


@contextlib.asynccontextmanager
async def running_gateway(settings: GatewaySettings | None = None, **build_kwargs):
    """A gateway on 127.0.0.1:<free port>; yields an httpx client whose base URL is it
    (`client.app` is the aiohttp app, `client.metrics_url` its /metrics on a port of its own)."""
    settings = settings or GatewaySettings()
    server = GatewayServer(build_app(settings, **build_kwargs), shutdown_grace_seconds=1)
    port = await server.start("127.0.0.1:0", metrics_address="127.0.0.1:0")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            client.app = server.app  # type: ignore[attr-defined]
            client.metrics_url = f"http://127.0.0.1:{server.metrics_port}/metrics"  # type: ignore[attr-defined]
            yield client
    finally:
        await server.stop()


async def register_policies(registry_target: str) -> None:
    """Registers the application `policies` (event type `policy-triggered`, level `high`)."""
    from hooks.registry.v1 import applications_pb2, applications_pb2_grpc
    from services.common.channels import channel
    from tests.helpers.registry import policies

    async with channel(registry_target) as grpc_channel:
        await applications_pb2_grpc.ApplicationServiceStub(grpc_channel).RegisterApplication(
            applications_pb2.RegisterApplicationRequest(application=policies("high"))
        )


def echo_servicer(echo_pb2: Any, echo_pb2_grpc: Any) -> Any:
    """The test-only Echo service's servicer, given its generated modules (the `echo_modules` fixture)."""

    class EchoServicer(echo_pb2_grpc.EchoServiceServicer):
        async def Echo(self, request, context):
            metadata = dict(context.invocation_metadata() or ())
            return echo_pb2.EchoResponse(
                request=request,
                metadata_keys=sorted(metadata),
                account=parse_identity(metadata.get(IDENTITY_HEADER)),
                secret="never-shown",
            )

        async def Hidden(self, request, context):
            return echo_pb2.EchoResponse(request=request)

        async def Fail(self, request, context):
            status = status_pb2.Status(code=request.code, message=request.message or "failed on purpose")
            if request.violation_field:
                status.details.add().Pack(
                    error_details_pb2.BadRequest(
                        field_violations=[
                            error_details_pb2.BadRequest.FieldViolation(
                                field=request.violation_field, description="is wrong"
                            )
                        ]
                    )
                )
            await context.abort_with_status(rpc_status.to_status(status))

        async def Count(self, request, context):
            for number in range(request.count):
                if number and request.interval_ms:
                    await asyncio.sleep(request.interval_ms / 1000)
                yield echo_pb2.CountResponse(number=number)
            if request.fail_code:
                await context.abort(grpc.StatusCode(_status_code(request.fail_code)), "stream failed on purpose")
            if request.count == 0:
                await asyncio.Event().wait()  # a quiet stream, until the client goes away

    return EchoServicer()


def _status_code(number: int) -> tuple[int, str]:
    return next(code.value for code in grpc.StatusCode if code.value[0] == number)
