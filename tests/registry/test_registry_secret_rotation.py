"""Signing secret rotation in the registry: replacing an endpoint's secret keeps the one replaced for the
grace period (HOOKS_REGISTRY_SECRET_ROTATION_GRACE_SECONDS), shown to its owner as a hint and an expiry
and handed to the sender by GetDeliveryTarget, then dropped; migration 0004 adds it to stored endpoints."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

from google.protobuf import field_mask_pb2
from sqlalchemy import Column, MetaData, Table

from hooks.registry.v1 import endpoints_pb2 as pb
from hooks.registry.v1 import routing_pb2 as r_pb
from services.common.channels import channel
from services.common.db import create_engine, upgrade
from services.common.identity import identity_metadata
from services.registry.server import MIGRATIONS, VERSION_TABLE
from tests.helpers.registry import Registry, running_registry
from tests.helpers.waiting import eventually

ME = identity_metadata("acct-1")
OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()


def rotate(registry: Registry, endpoint_id: str, secret: str = ""):
    """Replaces the secret: with `secret`, or a generated one when it is empty."""
    return registry.endpoints.UpdateEndpoint(
        pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=endpoint_id, secret=secret), update_mask=field_mask_pb2.FieldMask(paths=["secret"])
        ),
        metadata=ME,
    )


async def delivery_target(registry: Registry, endpoint_id: str) -> r_pb.GetDeliveryTargetResponse:
    return await registry.routing.GetDeliveryTarget(r_pb.GetDeliveryTargetRequest(endpoint_id=endpoint_id))


async def test_a_replaced_secret_signs_for_the_grace_period(registry):
    endpoint = await registry.endpoint("acct-1", "ops", secret=OLD)
    assert not endpoint.previous_secret_hint and not endpoint.HasField("previous_secret_expire_time")
    assert (await delivery_target(registry, endpoint.id)).previous_secret == ""

    before = datetime.now(UTC)
    rotated = (await rotate(registry, endpoint.id, NEW)).endpoint
    assert rotated.secret_hint == NEW[-4:] and rotated.previous_secret_hint == OLD[-4:]
    expires = rotated.previous_secret_expire_time.ToDatetime(tzinfo=UTC)
    assert before + timedelta(hours=24) <= expires <= datetime.now(UTC) + timedelta(hours=24)  # the default
    target = await delivery_target(registry, endpoint.id)
    assert (target.endpoint.secret, target.previous_secret) == (NEW, OLD)
    assert target.endpoint.previous_secret_expire_time == rotated.previous_secret_expire_time
    got = (await registry.endpoints.GetEndpoint(pb.GetEndpointRequest(id=endpoint.id), metadata=ME)).endpoint
    assert (
        got.previous_secret_hint == OLD[-4:] and got.previous_secret_expire_time == rotated.previous_secret_expire_time
    )

    # Rotating again within the grace period: the secret just replaced is the one kept; the older stops.
    again = (await rotate(registry, endpoint.id)).endpoint
    target = await delivery_target(registry, endpoint.id)
    assert target.previous_secret == NEW and target.endpoint.secret not in (OLD, NEW)
    assert again.previous_secret_hint == NEW[-4:] and again.secret_hint == target.endpoint.secret[-4:]

    # The same secret again is no rotation; other changes leave the rotation as it is.
    same = (await rotate(registry, endpoint.id, target.endpoint.secret)).endpoint
    assert (
        same.previous_secret_hint == NEW[-4:] and same.previous_secret_expire_time == again.previous_secret_expire_time
    )
    described = await registry.endpoints.UpdateEndpoint(
        pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=endpoint.id, description="pager"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        metadata=ME,
    )
    assert (await delivery_target(registry, endpoint.id)).previous_secret == NEW
    assert described.endpoint.previous_secret_hint == NEW[-4:]


async def test_the_replaced_secret_stops_after_the_grace_period(database_url):
    async with running_registry(database_url, registry_secret_rotation_grace_seconds=1.0) as (server, port):
        async with channel(f"127.0.0.1:{port}") as ch:
            registry = Registry(port, server, ch)
            endpoint = await registry.endpoint("acct-1", "ops", secret=OLD)
            rotated = (await rotate(registry, endpoint.id, NEW)).endpoint
            assert rotated.previous_secret_hint == OLD[-4:]
            assert (await delivery_target(registry, endpoint.id)).previous_secret == OLD
            expires = rotated.previous_secret_expire_time.ToDatetime(tzinfo=UTC)
            assert expires <= datetime.now(UTC) + timedelta(seconds=1)

            async def dropped():
                target = await delivery_target(registry, endpoint.id)
                return target.previous_secret == "" and not target.endpoint.previous_secret_hint

            await eventually(dropped, timeout=10, message="the replaced secret is dropped after its grace period")
            assert datetime.now(UTC) >= expires
            got = (await registry.endpoints.GetEndpoint(pb.GetEndpointRequest(id=endpoint.id), metadata=ME)).endpoint
            assert not got.previous_secret_hint and not got.HasField("previous_secret_expire_time")
            assert (await delivery_target(registry, endpoint.id)).endpoint.secret == NEW


async def test_without_a_grace_period_the_replaced_secret_stops_at_once(database_url):
    async with running_registry(database_url, registry_secret_rotation_grace_seconds=0) as (server, port):
        async with channel(f"127.0.0.1:{port}") as ch:
            registry = Registry(port, server, ch)
            endpoint = await registry.endpoint("acct-1", "ops", secret=OLD)
            rotated = (await rotate(registry, endpoint.id, NEW)).endpoint
            assert not rotated.previous_secret_hint and not rotated.HasField("previous_secret_expire_time")
            target = await delivery_target(registry, endpoint.id)
            assert (target.endpoint.secret, target.previous_secret) == (NEW, "")


async def test_migration_0004_keeps_stored_endpoints_without_a_previous_secret(database_url):
    """Endpoints stored before 0004 have no previous secret after it, and rotate like new ones."""
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS, VERSION_TABLE, "0003")
    now = datetime.now(UTC)
    row = dict(
        id="00000000-0000-0000-0000-000000000001", account_id="acct-1", name="stored", description="", type="webhook",
        target="https://hooks.example.com/x", enabled=True, headers="{}", ca_certificate="", secret=OLD,
        disabled_reason="", rate_limit_requests=0, rate_limit_period="", delivery_order="unordered",
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
            target = await delivery_target(registry, row["id"])
            assert (target.endpoint.secret, target.previous_secret) == (OLD, "")
            assert not target.endpoint.HasField("previous_secret_expire_time")
            rotated = (await rotate(registry, row["id"], NEW)).endpoint
            assert rotated.previous_secret_hint == OLD[-4:]
            assert (await delivery_target(registry, row["id"])).previous_secret == OLD
