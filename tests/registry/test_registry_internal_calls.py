"""The sender's internal calls (GetDeliveryTarget, DisableEndpoint), and concurrent writes."""

from __future__ import annotations

import asyncio

import grpc

from hooks.registry.v1 import endpoints_pb2 as ep_pb
from hooks.registry.v1 import routing_pb2 as pb
from services.common.identity import identity_metadata
from tests.helpers.registry import expect_error, expect_invalid


async def test_get_delivery_target_has_the_secrets_and_account(registry):
    endpoint = await registry.endpoint("acct-1", "ops", headers={"X-Team": "a"})
    target = await registry.routing.GetDeliveryTarget(pb.GetDeliveryTargetRequest(endpoint_id=endpoint.id))
    assert target.account_id == "acct-1"
    assert target.endpoint.id == endpoint.id and target.endpoint.target == endpoint.target
    assert target.endpoint.secret.startswith("whsec_") and target.endpoint.secret_hint == endpoint.secret_hint
    assert dict(target.endpoint.headers) == {"X-Team": "a"}
    await expect_error(
        registry.routing.GetDeliveryTarget(pb.GetDeliveryTargetRequest(endpoint_id="missing")),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_invalid(registry.routing.GetDeliveryTarget(pb.GetDeliveryTargetRequest()), "endpoint_id")


async def test_disable_endpoint(registry):
    endpoint = await registry.endpoint("acct-1", "ops")
    await expect_invalid(registry.routing.DisableEndpoint(pb.DisableEndpointRequest(endpoint_id=endpoint.id)), "reason")
    await expect_invalid(registry.routing.DisableEndpoint(pb.DisableEndpointRequest(reason="x")), "endpoint_id")
    await expect_error(
        registry.routing.DisableEndpoint(pb.DisableEndpointRequest(endpoint_id="missing", reason="x")),
        grpc.StatusCode.NOT_FOUND,
    )
    response = await registry.routing.DisableEndpoint(
        pb.DisableEndpointRequest(endpoint_id=endpoint.id, reason="failing for 5 days")
    )
    assert response.changed and not response.endpoint.enabled
    seen = (
        await registry.endpoints.GetEndpoint(
            ep_pb.GetEndpointRequest(id=endpoint.id), metadata=identity_metadata("acct-1")
        )
    ).endpoint
    assert seen.disabled_reason == "failing for 5 days" and not seen.enabled


async def test_concurrent_creates_of_one_name_make_one_endpoint(registry):
    results = await asyncio.gather(
        *(registry.endpoint("acct-1", "same", target=f"https://x.example/{i}") for i in range(6)),
        return_exceptions=True,
    )
    made = [r for r in results if isinstance(r, ep_pb.Endpoint)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(made) == 1 and len(refused) == 5
    assert all(r.code() == grpc.StatusCode.ALREADY_EXISTS for r in refused)
    listed = await registry.endpoints.ListEndpoints(ep_pb.ListEndpointsRequest(), metadata=identity_metadata("acct-1"))
    assert [e.id for e in listed.endpoints] == [made[0].id]
