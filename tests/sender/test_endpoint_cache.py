"""The endpoint cache follows the registry's change stream; when the stream breaks (the registry
restarts) the cache is emptied and the stream reopened after the last sequence it saw, so a change made
while its registry was away still drops the endpoint and nothing stale is ever used."""

from __future__ import annotations

from hooks.registry.v1 import endpoints_pb2
from hooks.sender.v1 import deliveries_pb2
from services.common.identity import identity_metadata
from services.registry.server import build_server as build_registry
from services.registry.settings import RegistrySettings
from tests.helpers.registry import LOOPBACK
from tests.helpers.sender import (
    create_endpoint,
    deliver,
    make_event,
    new_account,
    request_for,
    running_sender,
    wait_for_status,
)
from tests.helpers.waiting import eventually

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED


async def test_the_cache_is_emptied_when_the_registry_stream_breaks(sqlite_url, receiver):
    settings = RegistrySettings(
        registry_database_url=sqlite_url,
        registry_change_poll_seconds=0.05,
        shutdown_grace_seconds=0.1,
        sender_allowed_networks=LOOPBACK,
    )
    registry = await build_registry(settings)
    port = await registry.start("127.0.0.1:0")
    account = new_account()
    try:
        async with running_sender(sqlite_url, f"127.0.0.1:{port}") as sender:
            targets = sender.server.sender.targets
            await eventually(lambda: targets.watching)
            seen = targets.changes_applied
            endpoint = await create_endpoint(sender, account, receiver.url("first"))
            # The creation comes down the change stream too (and drops the endpoint): once it has,
            # nothing can drop the lookup below.
            await eventually(lambda: targets.changes_applied > seen)
            [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
            await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
            assert endpoint.id in targets

            await registry.stop(0.1)
            await eventually(lambda: not targets.watching and len(targets) == 0)

            registry = await build_registry(settings)  # back, on the same address and database
            await registry.start(f"127.0.0.1:{port}")
            await eventually(lambda: targets.watching)
            endpoint.target = receiver.url("second")
            await sender.endpoints.UpdateEndpoint(
                endpoints_pb2.UpdateEndpointRequest(endpoint=endpoint, update_mask={"paths": ["target"]}),
                metadata=identity_metadata(account),
            )
            [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
            await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
            assert len(receiver.on("first")) == 1 and len(receiver.on("second")) == 1
    finally:
        await registry.stop(0.1)


async def test_a_change_made_while_the_stream_was_down_comes_down_it_after(database_url, receiver):
    settings = RegistrySettings(
        registry_database_url=database_url,
        registry_change_poll_seconds=0.05,
        shutdown_grace_seconds=0.1,
        sender_allowed_networks=LOOPBACK,
    )
    followed = await build_registry(settings)
    port = await followed.start("127.0.0.1:0")
    other = await build_registry(settings)  # a second replica on the same database
    other_port = await other.start("127.0.0.1:0")
    account = new_account()
    try:
        async with running_sender(database_url, f"127.0.0.1:{port}") as sender:
            targets = sender.server.sender.targets
            await eventually(lambda: targets.watching)
            endpoint = await create_endpoint(sender, account, receiver.url("first"))
            await eventually(lambda: targets.changes_applied >= 1)
            seen = targets.sequence
            assert seen > 0

            await followed.stop(0.1)
            await eventually(lambda: not targets.watching)
            applied = targets.changes_applied
            # Changed through the other replica while the sender's stream is down.
            async with running_sender(database_url, f"127.0.0.1:{other_port}") as through_other:
                endpoint.target = receiver.url("second")
                await through_other.endpoints.UpdateEndpoint(
                    endpoints_pb2.UpdateEndpointRequest(endpoint=endpoint, update_mask={"paths": ["target"]}),
                    metadata=identity_metadata(account),
                )

            followed = await build_registry(settings)  # back on the same address
            await followed.start(f"127.0.0.1:{port}")
            await eventually(lambda: targets.watching)
            # The update (made after `seen`) is replayed; a stream reopened from 0 would never send it.
            await eventually(lambda: targets.changes_applied > applied and targets.sequence > seen)

            [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
            await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
            assert len(receiver.on("second")) == 1 and not receiver.on("first")
    finally:
        await followed.stop(0.1)
        await other.stop(0.1)
