"""WatchDeliveries sees every replica's deliveries (issue 9): two senders on one PostgreSQL database,
a watcher on one, deliveries made by the other."""

from __future__ import annotations

import asyncio

from hooks.sender.v1 import deliveries_pb2
from services.common.identity import identity_metadata
from tests.helpers.registry import running_registry
from tests.helpers.sender import create_endpoint, deliver, make_event, new_account, request_for, running_sender
from tests.helpers.waiting import eventually

PENDING = deliveries_pb2.DELIVERY_STATUS_PENDING
SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED


async def test_a_watcher_on_one_sender_sees_the_other_senders_deliveries(pg_url, receiver):
    account = new_account()
    other_account = new_account()
    async with running_registry(pg_url, registry_change_poll_seconds=0.05) as (_server, port):
        registry = f"127.0.0.1:{port}"
        async with running_sender(pg_url, registry) as watched, running_sender(pg_url, registry) as working:
            endpoint = await create_endpoint(working, account, receiver.url("hook"))
            large = await create_endpoint(working, account, receiver.url("large"))
            foreign = await create_endpoint(working, other_account, receiver.url("foreign"))
            changes: list[deliveries_pb2.Delivery] = []
            call = watched.deliveries.WatchDeliveries(
                deliveries_pb2.WatchDeliveriesRequest(), metadata=identity_metadata(account)
            )

            async def collect():
                async for change in call:
                    changes.append(change.delivery)

            collector = asyncio.create_task(collect())
            relay = working.server.sender.hub.relay
            try:
                await eventually(lambda: relay.wants(account))
                [foreign_response] = await deliver(working, request_for(make_event(other_account), foreign.id))
                [response] = await deliver(working, request_for(make_event(account), endpoint.id))
                # Larger than a notification may carry: relayed by id, read from the database.
                [large_response] = await deliver(
                    working, request_for(make_event(account, message={"blob": "x" * 20_000}), large.id)
                )
                ids = {response.delivery_ids[0], large_response.delivery_ids[0]}
                await eventually(lambda: {c.id for c in changes if c.status == SUCCEEDED} == ids)
            finally:
                call.cancel()
                await asyncio.gather(collector, return_exceptions=True)
            assert working.server.sender.hub.watching(account) == 0  # none watches on the working one
            assert {c.id for c in changes} == ids  # nothing of the other account
            small = [c.status for c in changes if c.id == response.delivery_ids[0]]
            assert small == [PENDING, SUCCEEDED]
            assert foreign_response.delivery_ids[0] not in {c.id for c in changes}
