"""Every List call answers a page size out of range the same way over gRPC and over HTTP: INVALID_ARGUMENT
(400) with the same message and a BadRequest field violation naming `page_size`; 1000, the one cap, is a
page on both. Real registry and sender (SQLite) behind a real gateway."""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio
from grpc_status import rpc_status

from gateway.errors import status_json
from gateway.settings import GatewaySettings
from hooks.registry.v1 import (
    applications_pb2,
    applications_pb2_grpc,
    endpoints_pb2,
    endpoints_pb2_grpc,
    filters_pb2,
    filters_pb2_grpc,
)
from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
from services.common.channels import channel
from services.common.paging import MAX_PAGE_SIZE
from services.sender.server import build_server as build_sender
from services.sender.settings import SenderSettings
from tests.helpers.gateway import identity, running_gateway
from tests.helpers.registry import running_registry

ME = identity("acct-a")
METADATA = tuple(ME.items())


@pytest_asyncio.fixture
async def stack(tmp_path):
    """(the gateway's HTTP client, a stub per List call over gRPC: path -> (call, request class))."""
    async with running_registry(f"sqlite:///{tmp_path / 'registry.db'}") as (_, registry_port):
        sender = await build_sender(
            SenderSettings(
                sender_database_url=f"sqlite:///{tmp_path / 'sender.db'}",
                registry_target=f"127.0.0.1:{registry_port}",
                shutdown_grace_seconds=0.5,
            )
        )
        sender_port = await sender.start("127.0.0.1:0")
        try:
            settings = GatewaySettings(
                registry_target=f"127.0.0.1:{registry_port}", sender_target=f"127.0.0.1:{sender_port}"
            )
            async with (
                running_gateway(settings) as client,
                channel(f"127.0.0.1:{registry_port}") as registry,
                channel(f"127.0.0.1:{sender_port}") as sender_channel,
            ):
                calls = {
                    "/api/hooks/v1/applications": (
                        applications_pb2_grpc.ApplicationServiceStub(registry).ListApplications,
                        applications_pb2.ListApplicationsRequest,
                    ),
                    "/api/hooks/v1/endpoints": (
                        endpoints_pb2_grpc.EndpointServiceStub(registry).ListEndpoints,
                        endpoints_pb2.ListEndpointsRequest,
                    ),
                    "/api/hooks/v1/filters": (
                        filters_pb2_grpc.FilterServiceStub(registry).ListFilters,
                        filters_pb2.ListFiltersRequest,
                    ),
                    "/api/hooks/v1/deliveries": (
                        deliveries_pb2_grpc.DeliveryServiceStub(sender_channel).ListDeliveries,
                        deliveries_pb2.ListDeliveriesRequest,
                    ),
                }
                yield client, calls
        finally:
            await sender.stop(0.5)


@pytest.mark.parametrize("page_size", [MAX_PAGE_SIZE + 1, 5000, -1])
async def test_out_of_range_is_the_same_error_on_both_transports(stack, page_size):
    client, calls = stack
    for path, (call, request_class) in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call(request_class(page_size=page_size), metadata=METADATA)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, path
        over_grpc = status_json(rpc_status.from_call(error.value))
        response = await client.get(path, params={"pageSize": str(page_size)}, headers=ME)
        assert response.status_code == 400, (path, response.text)
        assert response.json() == over_grpc, path
        [violation] = over_grpc["details"][0]["fieldViolations"]
        assert violation["field"] == "page_size"


async def test_the_cap_itself_is_a_page_on_both_transports(stack):
    client, calls = stack
    for path, (call, request_class) in calls.items():
        await call(request_class(page_size=MAX_PAGE_SIZE), metadata=METADATA)
        response = await client.get(path, params={"pageSize": str(MAX_PAGE_SIZE)}, headers=ME)
        assert response.status_code == 200, (path, response.text)


async def test_a_garbled_page_token_is_the_same_error_on_both_transports(stack):
    client, calls = stack
    for path, (call, request_class) in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call(request_class(page_token="garbled!"), metadata=METADATA)
        over_grpc = status_json(rpc_status.from_call(error.value))
        response = await client.get(path, params={"pageToken": "garbled!"}, headers=ME)
        assert response.status_code == 400 and response.json() == over_grpc, path
        assert over_grpc["details"][0]["fieldViolations"][0]["field"] == "page_token"
