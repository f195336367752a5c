"""DeliverBatch: several Deliver requests per stream message, each still answered (and stored
idempotently) on its own, exactly as Deliver answers it."""

from __future__ import annotations

import asyncio

from google.rpc import code_pb2

from hooks.sender.v1 import deliveries_pb2
from tests.helpers.sender import create_endpoint, deliver, make_event, new_account, request_for, wait_for_status
from tests.helpers.waiting import eventually

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED


async def deliver_batches(
    sender, *batches: list[deliveries_pb2.DeliverRequest]
) -> list[deliveries_pb2.DeliverResponse]:
    """Sends each list as one DeliverBatchRequest on one stream; returns every answer, flattened."""
    messages = [deliveries_pb2.DeliverBatchRequest(requests=batch) for batch in batches]
    call = sender.deliveries.DeliverBatch(iter(messages), timeout=30)
    return [response async for message in call for response in message.responses]


async def test_each_request_of_a_batch_is_answered_on_its_own(sender, receiver):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("batch"))
    first, second, third = (request_for(make_event(account), endpoint.id) for _ in range(3))
    no_endpoints = request_for(make_event(account))

    responses = await deliver_batches(sender, [first, no_endpoints, second], [], [third])

    by_id = {r.request_id: r for r in responses}
    assert len(responses) == 4 and set(by_id) == {r.request_id for r in (first, second, third, no_endpoints)}
    # A bad request is refused alone; the others of its batch are queued all the same.
    assert by_id[no_endpoints.request_id].status.code == code_pb2.INVALID_ARGUMENT
    assert "endpoint_ids" in by_id[no_endpoints.request_id].status.message
    assert not by_id[no_endpoints.request_id].delivery_ids
    for request in (first, second, third):
        assert by_id[request.request_id].status.code == code_pb2.OK
        [delivery_id] = by_id[request.request_id].delivery_ids
        await wait_for_status(sender, account, delivery_id, SUCCEEDED)
    assert len(receiver.on("batch")) == 3


async def test_a_request_replayed_in_a_batch_gets_the_ids_deliver_gave_and_is_sent_once(sender, receiver):
    account = new_account()
    one = await create_endpoint(sender, account, receiver.url("one"))
    two = await create_endpoint(sender, account, receiver.url("two"))
    request = request_for(make_event(account), one.id, two.id)
    [original] = await deliver(sender, request)
    assert original.status.code == code_pb2.OK

    fresh = request_for(make_event(account), one.id)
    replayed, new = await deliver_batches(sender, [request, fresh])

    assert replayed.request_id == request.request_id and new.request_id == fresh.request_id
    assert list(replayed.delivery_ids) == list(original.delivery_ids)  # one per endpoint, in order
    assert new.status.code == code_pb2.OK and new.delivery_ids[0] not in original.delivery_ids
    await eventually(lambda: len(receiver.on("one")) == 2 and len(receiver.on("two")) == 1)
    await asyncio.sleep(0.3)  # give a wrongful second delivery the time to arrive
    assert len(receiver.on("one")) == 2 and len(receiver.on("two")) == 1


async def test_a_large_batch_is_all_answered_and_delivered(sender, receiver):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("large"))
    requests = [request_for(make_event(account), endpoint.id) for _ in range(300)]  # beyond one transaction

    responses = await deliver_batches(sender, requests)

    assert sorted(r.request_id for r in responses) == sorted(r.request_id for r in requests)
    assert all(r.status.code == code_pb2.OK and len(r.delivery_ids) == 1 for r in responses)
    await eventually(lambda: len(receiver.on("large")) == 300, timeout=60)
