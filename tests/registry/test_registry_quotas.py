"""Tenant quotas: endpoints and filters per account, endpoints per filter. Over a limit the answer
is RESOURCE_EXHAUSTED (HTTP 429 through the gateway) with a QuotaFailure naming the limit; other
accounts are not affected, and freeing room makes room."""

from __future__ import annotations

import asyncio

import grpc
import pytest_asyncio
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from hooks.registry.v1 import endpoints_pb2 as ep_pb
from hooks.registry.v1 import filters_pb2 as f_pb
from services.common.channels import channel
from services.common.identity import identity_metadata
from tests.helpers.registry import Registry, expect_error, running_registry

ME = identity_metadata("acct-1")


@pytest_asyncio.fixture
async def small(database_url):
    """A registry whose quotas are 3 endpoints and 2 filters per account, 3 endpoints per filter."""
    async with running_registry(
        database_url,
        registry_max_endpoints_per_account=3,
        registry_max_filters_per_account=2,
        registry_max_endpoints_per_filter=3,
    ) as (server, port):
        async with channel(f"127.0.0.1:{port}") as ch:
            yield Registry(port, server, ch)


async def expect_quota(call, subject: str, limit: int) -> None:
    error = await expect_error(call, grpc.StatusCode.RESOURCE_EXHAUSTED)
    status = rpc_status.from_call(error)
    failures = []
    for detail in status.details:
        if detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            failure = error_details_pb2.QuotaFailure()
            detail.Unpack(failure)
            failures += [(v.subject, v.description) for v in failure.violations]
    assert [s for s, _ in failures] == [subject], failures
    assert f"at most {limit} " in failures[0][1] and f"at most {limit} " in error.details()


async def test_endpoints_per_account(small):
    made = [await small.endpoint("acct-1", f"e{i}") for i in range(3)]
    await expect_quota(small.endpoint("acct-1", "one-too-many"), "endpoints_per_account", 3)
    assert (await small.endpoint("acct-2", "elsewhere")).name == "elsewhere"  # another account's own quota
    await small.endpoints.DeleteEndpoint(ep_pb.DeleteEndpointRequest(id=made[0].id), metadata=ME)
    assert (await small.endpoint("acct-1", "after-a-delete")).name == "after-a-delete"
    listed = await small.endpoints.ListEndpoints(ep_pb.ListEndpointsRequest(), metadata=ME)
    assert len(listed.endpoints) == 3


async def test_concurrent_creates_never_overshoot(small):
    results = await asyncio.gather(*(small.endpoint("acct-1", f"e{i}") for i in range(8)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(results) - len(refused) == 3
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert len((await small.endpoints.ListEndpoints(ep_pb.ListEndpointsRequest(), metadata=ME)).endpoints) == 3


async def test_filters_per_account(small):
    endpoint = await small.endpoint("acct-1", "ops")
    first = await small.filter("acct-1", [endpoint.id])
    await small.filter("acct-1", [endpoint.id])
    await expect_quota(small.filter("acct-1", [endpoint.id]), "filters_per_account", 2)
    await small.filters.DeleteFilter(f_pb.DeleteFilterRequest(id=first.id), metadata=ME)
    await small.filter("acct-1", [endpoint.id])
    assert len((await small.filters.ListFilters(f_pb.ListFiltersRequest(), metadata=ME)).filters) == 2


async def test_endpoints_per_filter_on_create_and_update(small):
    mine = [await small.endpoint("acct-1", f"e{i}") for i in range(3)]
    theirs = await small.endpoint("acct-2", "x")
    await expect_quota(small.filter("acct-1", [e.id for e in mine] + [theirs.id]), "endpoints_per_filter", 3)
    flt = await small.filter("acct-1", [mine[0].id])
    await expect_quota(
        small.filters.UpdateFilter(
            f_pb.UpdateFilterRequest(
                filter=f_pb.Filter(id=flt.id, endpoint_ids=[mine[0].id, mine[1].id, mine[2].id, mine[0].id]),
                update_mask=field_mask_pb2.FieldMask(paths=["endpoint_ids"]),
            ),
            metadata=ME,
        ),
        "endpoints_per_filter",
        3,
    )
    assert list((await small.filters.GetFilter(f_pb.GetFilterRequest(id=flt.id), metadata=ME)).filter.endpoint_ids) == [
        mine[0].id
    ]
    updated = await small.filters.UpdateFilter(
        f_pb.UpdateFilterRequest(
            filter=f_pb.Filter(id=flt.id, endpoint_ids=[e.id for e in mine]),
            update_mask=field_mask_pb2.FieldMask(paths=["endpoint_ids"]),
        ),
        metadata=ME,
    )
    assert list(updated.filter.endpoint_ids) == [e.id for e in mine]
