"""Tenancy: account B can neither see nor touch nor reference account A's endpoints and filters,
and what it is told is exactly what it would be told about things that do not exist."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf import field_mask_pb2

from hooks.registry.v1 import endpoints_pb2 as ep_pb
from hooks.registry.v1 import filters_pb2 as f_pb
from hooks.registry.v1 import routing_pb2 as r_pb
from services.common.identity import identity_metadata
from tests.helpers.registry import expect_error, expect_invalid

A = identity_metadata("acct-a")
B = identity_metadata("acct-b")


async def test_account_b_learns_nothing_about_account_a(registry):
    endpoint = await registry.endpoint("acct-a", "secret-ops")
    flt = await registry.filter("acct-a", [endpoint.id], name="a's filter")

    async def details(call, code):
        return (await expect_error(call, code)).details()

    # Endpoints: not found, same words as for an id that never existed.
    for endpoint_id, missing in [(endpoint.id, "00000000-0000-4000-8000-000000000000")]:
        got = await details(
            registry.endpoints.GetEndpoint(ep_pb.GetEndpointRequest(id=endpoint_id), metadata=B),
            grpc.StatusCode.NOT_FOUND,
        )
        never = await details(
            registry.endpoints.GetEndpoint(ep_pb.GetEndpointRequest(id=missing), metadata=B), grpc.StatusCode.NOT_FOUND
        )
        assert got.replace(endpoint_id, "ID") == never.replace(missing, "ID")
    await expect_error(
        registry.endpoints.UpdateEndpoint(
            ep_pb.UpdateEndpointRequest(
                endpoint=ep_pb.Endpoint(id=endpoint.id, enabled=False),
                update_mask=field_mask_pb2.FieldMask(paths=["enabled"]),
            ),
            metadata=B,
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        registry.endpoints.DeleteEndpoint(ep_pb.DeleteEndpointRequest(id=endpoint.id), metadata=B),
        grpc.StatusCode.NOT_FOUND,
    )
    assert not (await registry.endpoints.ListEndpoints(ep_pb.ListEndpointsRequest(), metadata=B)).endpoints
    assert not (
        await registry.endpoints.ListEndpoints(ep_pb.ListEndpointsRequest(name_contains="secret"), metadata=B)
    ).endpoints
    # B may use the same name: names are per account.
    await registry.endpoint("acct-b", "secret-ops")

    # Filters.
    await expect_error(
        registry.filters.GetFilter(f_pb.GetFilterRequest(id=flt.id), metadata=B), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        registry.filters.UpdateFilter(
            f_pb.UpdateFilterRequest(
                filter=f_pb.Filter(id=flt.id, enabled=False), update_mask=field_mask_pb2.FieldMask(paths=["enabled"])
            ),
            metadata=B,
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        registry.filters.DeleteFilter(f_pb.DeleteFilterRequest(id=flt.id), metadata=B), grpc.StatusCode.NOT_FOUND
    )
    assert not (await registry.filters.ListFilters(f_pb.ListFiltersRequest(), metadata=B)).filters
    assert not (
        await registry.filters.ListFilters(f_pb.ListFiltersRequest(endpoint_id=endpoint.id), metadata=B)
    ).filters

    # Referencing A's endpoint in B's filter: invalid, worded like a made-up id.
    violations = await expect_invalid(
        registry.filters.CreateFilter(
            f_pb.CreateFilterRequest(filter=f_pb.Filter(endpoint_ids=[endpoint.id, "made-up"])), metadata=B
        ),
        "filter.endpoint_ids[0]",
        "filter.endpoint_ids[1]",
    )
    assert violations["filter.endpoint_ids[0]"].replace(endpoint.id, "ID") == violations[
        "filter.endpoint_ids[1]"
    ].replace("made-up", "ID")

    # A's things are intact.
    still = (await registry.endpoints.GetEndpoint(ep_pb.GetEndpointRequest(id=endpoint.id), metadata=A)).endpoint
    assert still.enabled and still.name == "secret-ops"
    assert (await registry.filters.GetFilter(f_pb.GetFilterRequest(id=flt.id), metadata=A)).filter == flt


async def test_concurrent_route_lookups_of_many_accounts_each_get_their_own(registry):
    owners = {}
    for n in range(12):
        account = f"acct-{n}"
        endpoint = await registry.endpoint(account, f"endpoint-of-{n}")
        await registry.filter(account, [endpoint.id])
        owners[account] = endpoint.id
    internals = registry.server.registry
    assert internals.resolver.cached_accounts() == []  # every lookup below misses the cache and is batched together
    responses = await asyncio.gather(
        *(
            registry.routing.ResolveRoutes(
                r_pb.ResolveRoutesRequest(account_id=account, application="hooks", event_type="test")
            )
            for account in [*owners, *owners, "acct-nobody"]
        )
    )
    for account, response in zip([*owners, *owners, "acct-nobody"], responses, strict=True):
        assert [r.endpoint_id for r in response.routes] == ([owners[account]] if account in owners else [])
