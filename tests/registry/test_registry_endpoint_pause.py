"""Pausing and resuming an endpoint: what the owner sees (paused, pause_time), idempotence, its
independence from `enabled`, tenancy and bad ids, the change it puts on the change stream (what the
senders act on), GetDeliveryTarget carrying it; migration 0005 leaves stored endpoints running."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
from google.protobuf import field_mask_pb2
from sqlalchemy import Column, MetaData, Table

from hooks.registry.v1 import endpoints_pb2 as pb
from hooks.registry.v1 import routing_pb2 as r_pb
from services.common.channels import channel
from services.common.db import create_engine, upgrade
from services.common.identity import identity_metadata
from services.registry.server import MIGRATIONS, VERSION_TABLE
from tests.helpers.registry import Registry, expect_error, expect_invalid, running_registry

ME = identity_metadata("acct-1")


async def pause(registry: Registry, endpoint_id: str, metadata=ME) -> pb.Endpoint:
    return (await registry.endpoints.PauseEndpoint(pb.PauseEndpointRequest(id=endpoint_id), metadata=metadata)).endpoint


async def resume(registry: Registry, endpoint_id: str, metadata=ME) -> pb.Endpoint:
    return (
        await registry.endpoints.ResumeEndpoint(pb.ResumeEndpointRequest(id=endpoint_id), metadata=metadata)
    ).endpoint


async def get(registry: Registry, endpoint_id: str) -> pb.Endpoint:
    return (await registry.endpoints.GetEndpoint(pb.GetEndpointRequest(id=endpoint_id), metadata=ME)).endpoint


async def test_pause_and_resume_show_on_the_endpoint_and_repeat_harmlessly(registry):
    endpoint = await registry.endpoint("acct-1", "ops")
    assert not endpoint.paused and not endpoint.HasField("pause_time")

    paused = await pause(registry, endpoint.id)
    assert paused.paused and paused.HasField("pause_time") and paused.enabled
    assert paused.update_time.ToDatetime() >= endpoint.update_time.ToDatetime()
    assert (await get(registry, endpoint.id)).pause_time == paused.pause_time
    listed = (await registry.endpoints.ListEndpoints(pb.ListEndpointsRequest(), metadata=ME)).endpoints
    assert [(e.id, e.paused) for e in listed] == [(endpoint.id, True)]

    again = await pause(registry, endpoint.id)  # idempotent: the endpoint as it is, paused when it was
    assert again.paused and again.pause_time == paused.pause_time and again.update_time == paused.update_time

    resumed = await resume(registry, endpoint.id)
    assert not resumed.paused and not resumed.HasField("pause_time")
    assert not (await get(registry, endpoint.id)).paused
    assert (await resume(registry, endpoint.id)) == resumed  # resuming a running one changes nothing


async def test_paused_is_independent_of_enabled(registry):
    endpoint = await registry.endpoint("acct-1", "ops", enabled=False)
    paused = await pause(registry, endpoint.id)
    assert paused.paused and not paused.enabled
    enabled = (
        await registry.endpoints.UpdateEndpoint(
            pb.UpdateEndpointRequest(
                endpoint=pb.Endpoint(id=endpoint.id, enabled=True),
                update_mask=field_mask_pb2.FieldMask(paths=["enabled"]),
            ),
            metadata=ME,
        )
    ).endpoint
    assert enabled.enabled and enabled.paused and enabled.pause_time == paused.pause_time
    await registry.routing.DisableEndpoint(r_pb.DisableEndpointRequest(endpoint_id=endpoint.id, reason="410 Gone"))
    disabled = await get(registry, endpoint.id)
    assert not disabled.enabled and disabled.paused


async def test_an_update_cannot_set_paused(registry):
    endpoint = await registry.endpoint("acct-1", "ops")
    for path in ("paused", "pause_time"):
        violations = await expect_invalid(
            registry.endpoints.UpdateEndpoint(
                pb.UpdateEndpointRequest(
                    endpoint=pb.Endpoint(id=endpoint.id, paused=True),
                    update_mask=field_mask_pb2.FieldMask(paths=[path]),
                ),
                metadata=ME,
            ),
            "update_mask",
        )
        assert "output only" in violations["update_mask"]
    assert not (await get(registry, endpoint.id)).paused


async def test_another_accounts_or_an_unknown_endpoint_is_not_found_and_an_empty_id_is_invalid(registry):
    endpoint = await registry.endpoint("acct-1", "ops")
    other = identity_metadata("acct-2")
    for call in (registry.endpoints.PauseEndpoint, registry.endpoints.ResumeEndpoint):
        request_type = pb.PauseEndpointRequest if call is registry.endpoints.PauseEndpoint else pb.ResumeEndpointRequest
        await expect_error(call(request_type(id=endpoint.id), metadata=other), grpc.StatusCode.NOT_FOUND)
        await expect_error(
            call(request_type(id="00000000-0000-0000-0000-000000000000"), metadata=ME), grpc.StatusCode.NOT_FOUND
        )
        await expect_invalid(call(request_type(id=""), metadata=ME), "id")
        await expect_error(call(request_type(id=endpoint.id)), grpc.StatusCode.UNAUTHENTICATED)
    assert not (await get(registry, endpoint.id)).paused


async def test_pause_and_resume_go_down_the_change_stream_and_reach_the_sender(registry):
    """Each is a change of the endpoint on WatchChanges (the senders' caches drop it and look again),
    and GetDeliveryTarget, what the sender looks up, says whether it is paused; an idempotent call
    changes nothing, so it logs nothing."""
    endpoint = await registry.endpoint("acct-1", "ops")
    stream = registry.routing.WatchChanges(r_pb.WatchChangesRequest())
    try:
        heartbeat = await stream.read()
        assert heartbeat.heartbeat
        await pause(registry, endpoint.id)
        await pause(registry, endpoint.id)
        target = await registry.routing.GetDeliveryTarget(r_pb.GetDeliveryTargetRequest(endpoint_id=endpoint.id))
        assert target.endpoint.paused and target.endpoint.HasField("pause_time")
        await resume(registry, endpoint.id)
        changes = [await asyncio.wait_for(stream.read(), 10) for _ in range(2)]
        assert [(c.kind, c.resource_id, c.account_id) for c in changes] == [
            (r_pb.RESOURCE_KIND_ENDPOINT, endpoint.id, "acct-1")
        ] * 2
        assert changes[1].sequence == changes[0].sequence + 1  # the second pause logged nothing
        target = await registry.routing.GetDeliveryTarget(r_pb.GetDeliveryTargetRequest(endpoint_id=endpoint.id))
        assert not target.endpoint.paused
    finally:
        stream.cancel()


async def test_migration_0005_leaves_stored_endpoints_running(database_url):
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS, VERSION_TABLE, "0004")
    now = datetime.now(UTC)
    row = dict(
        id="00000000-0000-0000-0000-000000000001", account_id="acct-1", name="stored", description="", type="webhook",
        target="https://hooks.example.com/x", enabled=True, headers="{}", ca_certificate="", secret="whsec_" + "A" * 32,
        previous_secret="", disabled_reason="", rate_limit_requests=0, rate_limit_period="", delivery_order="unordered",
        create_time=now, update_time=now,
    )  # fmt: skip
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(Table("endpoints", MetaData(), *(Column(name) for name in row)).insert(), [row])
    finally:
        await engine.dispose()

    async with running_registry(database_url) as (server, port):  # migrates to the head
        async with channel(f"127.0.0.1:{port}") as ch:
            registry = Registry(port, server, ch)
            stored = await get(registry, row["id"])
            assert not stored.paused and not stored.HasField("pause_time")
            assert (await pause(registry, row["id"])).paused
