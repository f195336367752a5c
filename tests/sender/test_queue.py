"""The durable queue: idempotent enqueue, answers only after commit, bad requests, the hot path
under a slow endpoint, and recovery by a new sender on the same database."""

from __future__ import annotations

import asyncio

from aiohttp import web
from google.rpc import code_pb2

from hooks.sender.v1 import deliveries_pb2
from services.common.identity import identity_metadata
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


async def test_replayed_request_returns_the_same_ids_and_delivers_once(sender, receiver):
    account = new_account()
    first = await create_endpoint(sender, account, receiver.url("a"))
    second = await create_endpoint(sender, account, receiver.url("b"))
    event = make_event(account)
    request = request_for(event, first.id, second.id)

    [original] = await deliver(sender, request)
    assert original.request_id == request.request_id
    assert original.status.code == code_pb2.OK
    assert len(original.delivery_ids) == 2 and len(set(original.delivery_ids)) == 2
    for delivery_id in original.delivery_ids:
        await wait_for_status(sender, account, delivery_id, SUCCEEDED)

    [replayed] = await deliver(sender, request)  # the matcher re-reads after a crash
    assert list(replayed.delivery_ids) == list(original.delivery_ids)
    listed = await sender.deliveries.ListDeliveries(
        deliveries_pb2.ListDeliveriesRequest(event_id=event.id), metadata=identity_metadata(account)
    )
    assert sorted(d.id for d in listed.deliveries) == sorted(original.delivery_ids)
    await asyncio.sleep(0.3)  # give a wrongful second delivery the time to arrive
    assert len(receiver.on("a")) == 1 and len(receiver.on("b")) == 1


async def test_bad_requests_are_answered_and_the_stream_goes_on(sender, receiver):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("ok"))
    no_endpoints = request_for(make_event(account))
    no_event_id = request_for(make_event(account, id=""), endpoint.id)
    good = request_for(make_event(account), endpoint.id)

    responses = await deliver(sender, no_endpoints, no_event_id, good)

    assert [r.request_id for r in responses] == [no_endpoints.request_id, no_event_id.request_id, good.request_id]
    assert responses[0].status.code == code_pb2.INVALID_ARGUMENT
    assert "endpoint_ids" in responses[0].status.message
    assert not responses[0].delivery_ids
    assert responses[1].status.code == code_pb2.INVALID_ARGUMENT
    assert "event.id" in responses[1].status.message
    assert responses[2].status.code == code_pb2.OK
    await wait_for_status(sender, account, responses[2].delivery_ids[0], SUCCEEDED)


async def test_many_requests_in_one_stream_are_all_delivered(sender, receiver):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("bulk"))
    requests = [request_for(make_event(account), endpoint.id) for _ in range(60)]
    responses = await deliver(sender, *requests)
    assert [r.request_id for r in responses] == [r.request_id for r in requests]
    assert all(r.status.code == code_pb2.OK for r in responses)
    await eventually(lambda: len(receiver.on("bulk")) == 60)


async def test_a_hanging_endpoint_does_not_hold_up_another(sender, receiver):
    account = new_account()
    release = asyncio.Event()

    async def hang(_request, _count):
        await release.wait()
        return web.Response(text="late")

    receiver.script["slow"] = hang
    slow = await create_endpoint(sender, account, receiver.url("slow"))
    fast = await create_endpoint(sender, account, receiver.url("fast"))
    try:
        # Far more than the per-endpoint limit (8) for the hanging endpoint first...
        await deliver(sender, *[request_for(make_event(account), slow.id) for _ in range(20)])
        await eventually(lambda: len(receiver.on("slow")) >= 8)
        # ...and the other endpoint is still served promptly.
        [response] = await deliver(sender, request_for(make_event(account), fast.id))
        await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED, timeout=3)
        assert len(receiver.on("slow")) == 8  # the per-endpoint limit holds
    finally:
        release.set()


async def test_deliveries_stored_but_not_sent_are_sent_by_a_new_sender(database_url, registry, receiver):
    """A sender that stored deliveries and died before sending them: after the lease, another sender
    on the same database sends them."""
    account = new_account()
    async with running_sender(database_url, registry, sender_lease_seconds=0.5) as first:
        endpoint = await create_endpoint(first, account, receiver.url("later"))
        # Its workers stop, and take deliveries without ever sending them: as if the process died
        # right after storing (the deliveries stay leased to it until the lease runs out).
        dispatcher = first.server.sender.dispatcher
        await dispatcher.close()
        dispatcher.submit = lambda *_args: True
        [response] = await deliver(first, request_for(make_event(account), endpoint.id))
        assert response.status.code == code_pb2.OK
    assert receiver.on("later") == []
    async with running_sender(database_url, registry, sender_lease_seconds=0.5) as second:
        delivery = await wait_for_status(second, account, response.delivery_ids[0], SUCCEEDED)
        assert delivery.attempt_count == 1
    assert len(receiver.on("later")) == 1


async def test_two_senders_on_one_database_share_the_work_without_doubles(database_url, registry, receiver):
    """Deliveries left by a dead sender come due while two senders poll the same database: each is
    claimed by one of them (SKIP LOCKED on PostgreSQL, an atomic UPDATE on SQLite) and sent once."""
    account = new_account()
    async with running_sender(database_url, registry, sender_lease_seconds=1.0) as first:
        endpoint = await create_endpoint(first, account, receiver.url("shared"))
        dispatcher = first.server.sender.dispatcher
        await dispatcher.close()
        dispatcher.submit = lambda *_args: True
        responses = await deliver(first, *[request_for(make_event(account), endpoint.id) for _ in range(40)])
    ids = {r.delivery_ids[0] for r in responses}
    async with (
        running_sender(database_url, registry, sender_concurrency=4) as second,
        running_sender(database_url, registry, sender_concurrency=4),
    ):
        await eventually(lambda: len(receiver.on("shared")) >= 40)
        for delivery_id in ids:
            await wait_for_status(second, account, delivery_id, SUCCEEDED)
    received_ids = [r.headers["webhook-id"] for r in receiver.on("shared")]
    assert sorted(received_ids) == sorted(ids)  # each once


async def test_a_stopping_sender_gives_its_unfinished_deliveries_back(database_url, registry, receiver):
    """A sender that drains (SIGTERM) cancels attempts still hanging after the grace period and gives
    their leases back: the next sender sends them at once, not after the lease (30 s here)."""
    account = new_account()
    release = asyncio.Event()

    async def hang_once(_request, count):
        if count == 0:
            await release.wait()
        return web.Response(text="ok")

    receiver.script["hang"] = hang_once
    try:
        async with running_sender(database_url, registry) as first:
            endpoint = await create_endpoint(first, account, receiver.url("hang"))
            [response] = await deliver(first, request_for(make_event(account), endpoint.id))
            await eventually(lambda: receiver.on("hang"))
        async with running_sender(database_url, registry) as second:
            delivery = await wait_for_status(second, account, response.delivery_ids[0], SUCCEEDED, timeout=10)
        assert delivery.attempt_count == 1  # the cancelled attempt left no trace but its request
        assert len(receiver.on("hang")) == 2
    finally:
        release.set()


async def test_a_batch_mixing_replays_and_new_deliveries_stores_only_the_new_ones(sender, receiver):
    """Requests that arrive together are stored in one INSERT: the ones already stored keep their ids
    and are not sent again; the new ones are stored and sent once."""
    account = new_account()
    old = await create_endpoint(sender, account, receiver.url("old"))
    new = await create_endpoint(sender, account, receiver.url("new"))
    event = make_event(account)
    [original] = await deliver(sender, request_for(event, old.id))
    await wait_for_status(sender, account, original.delivery_ids[0], SUCCEEDED)

    fresh_event = make_event(account)
    replayed, widened, fresh = await deliver(
        sender,
        request_for(event, old.id),
        request_for(event, old.id, new.id),  # the same event, now also routed to another endpoint
        request_for(fresh_event, old.id),
    )

    assert [r.status.code for r in (replayed, widened, fresh)] == [code_pb2.OK] * 3
    assert list(replayed.delivery_ids) == list(original.delivery_ids)
    assert widened.delivery_ids[0] == original.delivery_ids[0] and widened.delivery_ids[1] != original.delivery_ids[0]
    for delivery_id in (widened.delivery_ids[1], fresh.delivery_ids[0]):
        await wait_for_status(sender, account, delivery_id, SUCCEEDED)
    await asyncio.sleep(0.3)  # give a wrongful repeat the time to arrive
    assert len(receiver.on("old")) == 2 and len(receiver.on("new")) == 1


async def test_deliveries_beyond_the_workers_backlog_wait_in_the_database_and_are_all_sent(sender, receiver):
    """What the workers have no room for is stored without a lease and taken by the poller as room
    frees up: every delivery is sent, once."""
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("many"))
    sender.server.sender.dispatcher.backlog = 3

    responses = await deliver(sender, *[request_for(make_event(account), endpoint.id) for _ in range(30)])

    assert all(r.status.code == code_pb2.OK for r in responses)
    for response in responses:
        await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
    assert sorted(r.headers["webhook-id"] for r in receiver.on("many")) == sorted(r.delivery_ids[0] for r in responses)
