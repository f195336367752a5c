"""Whatever an attempt runs into ends as a recorded attempt (issue 8, finding 7): a request that cannot
be built from an endpoint's details (a header value with a control character, a host name IDNA cannot
encode) fails without retry, naming why, instead of crashing the attempt, which left its lease to be
taken again for ever with attempt_count 0. Such endpoints may be stored from before the registry
refused them, so these tests store them behind the registry's back."""

from __future__ import annotations

from hooks.sender.v1 import deliveries_pb2
from tests.helpers.sender import (
    create_endpoint,
    deliver,
    make_event,
    new_account,
    request_for,
    store_behind_the_registrys_back,
    wait_for_status,
)

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED
FAILED = deliveries_pb2.DELIVERY_STATUS_FAILED


async def test_an_endpoint_whose_request_cannot_be_built_fails_once_and_the_others_go_on(
    sender, receiver, database_url
):
    account = new_account()
    header = await create_endpoint(sender, account, receiver.url("header"))
    await store_behind_the_registrys_back(database_url, header.id, headers={"X-Token": "abc\u0001def"})
    host = await create_endpoint(sender, account, receiver.url("host"))
    await store_behind_the_registrys_back(database_url, host.id, target=f"http://{'a' * 64}.example/host")
    healthy = await create_endpoint(sender, account, receiver.url("healthy"), headers={"X-Token": "abc\tdef"})

    [answer] = await deliver(sender, request_for(make_event(account), header.id, host.id, healthy.id))
    to_header, to_host, to_healthy = answer.delivery_ids

    delivered = await wait_for_status(sender, account, to_healthy, SUCCEEDED)
    assert delivered.attempt_count == 1
    [received] = receiver.on("healthy")
    assert received.headers["X-Token"] == "abc\tdef"
    for delivery_id, expected in ((to_header, "control character"), (to_host, "idna")):
        delivery = await wait_for_status(sender, account, delivery_id, FAILED)
        [attempt] = delivery.attempts
        assert delivery.attempt_count == 1 and not attempt.succeeded
        assert attempt.error.startswith("the request cannot be sent: ") and expected in attempt.error, attempt.error
        assert delivery.last_error == attempt.error
    assert receiver.on("header") == [] and receiver.on("host") == []
