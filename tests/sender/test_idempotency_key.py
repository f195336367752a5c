"""The idempotency key is (application, event id, endpoint) (issue 8, finding 6): an event id is its
application's own, so two applications that both send an event "42" to one endpoint get two
deliveries (the second used to be acknowledged as a replay of the first, and never sent); a replay
of either still gets its own delivery's id and is not sent again."""

from __future__ import annotations

import asyncio
import json

from google.rpc import code_pb2

from hooks.sender.v1 import deliveries_pb2
from services.common.identity import identity_metadata
from tests.helpers.sender import create_endpoint, deliver, make_event, new_account, request_for, wait_for_status
from tests.helpers.waiting import eventually

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED


async def test_two_applications_events_with_one_id_are_both_delivered(sender, receiver):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("shared"))
    inventory = request_for(make_event(account, "from inventory", id="42", application="inventory"), endpoint.id)
    billing = request_for(make_event(account, "from billing", id="42", application="billing"), endpoint.id)

    first, second = await deliver(sender, inventory, billing)

    assert first.status.code == code_pb2.OK and second.status.code == code_pb2.OK
    assert first.delivery_ids[0] != second.delivery_ids[0]
    for answer in (first, second):
        await wait_for_status(sender, account, answer.delivery_ids[0], SUCCEEDED)
    bodies = sorted((json.loads(r.body)["application"], json.loads(r.body)["message"]) for r in receiver.on("shared"))
    assert bodies == [("billing", "from billing"), ("inventory", "from inventory")]

    # Replays (the matcher re-reads after a crash) get the same ids, in one batch or apart.
    replayed = await deliver(sender, billing, inventory)
    assert [list(r.delivery_ids) for r in replayed] == [list(second.delivery_ids), list(first.delivery_ids)]
    listed = await sender.deliveries.ListDeliveries(
        deliveries_pb2.ListDeliveriesRequest(event_id="42"), metadata=identity_metadata(account)
    )
    assert sorted(d.event.application for d in listed.deliveries) == ["billing", "inventory"]
    await asyncio.sleep(0.3)  # give a wrongful second delivery the time to arrive
    assert len(receiver.on("shared")) == 2


async def test_one_request_naming_both_applications_events_in_one_batch(sender, receiver):
    account = new_account()
    one = await create_endpoint(sender, account, receiver.url("one"))
    two = await create_endpoint(sender, account, receiver.url("two"))
    requests = [
        request_for(make_event(account, id="7", application=application), one.id, two.id)
        for application in ("inventory", "billing", "advisor")
    ]
    answers = await deliver(sender, *requests)
    ids = [delivery_id for answer in answers for delivery_id in answer.delivery_ids]
    assert len(set(ids)) == 6
    await eventually(lambda: len(receiver.on("one")) == 3 and len(receiver.on("two")) == 3)
