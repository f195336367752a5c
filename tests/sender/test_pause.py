"""Paused endpoints: their deliveries are kept PENDING, nothing sent and no attempt counted, while
new ones keep being accepted; on resume they go out within a second or two (the resume comes down
the registry's change stream: the senders here poll the database only every minute), in the order
they arrived, to an ordered endpoint and an unordered one. A disabled or deleted endpoint's kept
deliveries fail as before; a sender that was down when the endpoint was resumed lets them go when
it starts."""

from __future__ import annotations

import time

import pytest
from google.rpc import code_pb2

from hooks.registry.v1 import endpoints_pb2, endpoints_pb2_grpc
from hooks.sender.v1 import deliveries_pb2
from services.common.channels import channel
from services.common.identity import identity_metadata
from services.sender.pauses import HELD
from tests.helpers.sender import (
    Receiver,
    Sender,
    create_endpoint,
    deliver,
    get_delivery,
    make_event,
    new_account,
    request_for,
    running_sender,
    wait_for_status,
)
from tests.helpers.waiting import eventually

PENDING = deliveries_pb2.DELIVERY_STATUS_PENDING
SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED
FAILED = deliveries_pb2.DELIVERY_STATUS_FAILED
#: The database is polled this rarely: what goes out within seconds went because of the resume.
RARE_POLLS = dict(sender_poll_interval_seconds=60.0)


async def pause(sender: Sender, account: str, endpoint_id: str) -> endpoints_pb2.Endpoint:
    response = await sender.endpoints.PauseEndpoint(
        endpoints_pb2.PauseEndpointRequest(id=endpoint_id), metadata=identity_metadata(account)
    )
    return response.endpoint


async def resume(sender: Sender, account: str, endpoint_id: str) -> endpoints_pb2.Endpoint:
    response = await sender.endpoints.ResumeEndpoint(
        endpoints_pb2.ResumeEndpointRequest(id=endpoint_id), metadata=identity_metadata(account)
    )
    return response.endpoint


async def deliver_events(sender: Sender, account: str, endpoint_id: str, count: int) -> list[str]:
    """`count` events for the endpoint on one stream, accepted in that order; their delivery ids."""
    responses = await deliver(sender, *[request_for(make_event(account, i), endpoint_id) for i in range(count)])
    assert all(r.status.code == code_pb2.OK for r in responses)
    return [r.delivery_ids[0] for r in responses]


async def wait_until_held(sender: Sender, account: str, delivery_ids: list[str]) -> None:
    """Each delivery is PENDING with no attempt and no next attempt: kept for the resume."""

    async def held() -> bool:
        for delivery_id in delivery_ids:
            delivery = await get_delivery(sender, account, delivery_id)
            if delivery.last_error != HELD:
                return False
            assert delivery.status == PENDING and delivery.attempt_count == 0 and not delivery.attempts
            assert not delivery.HasField("next_attempt_time")
        return True

    await eventually(held, timeout=15, message="the deliveries are held")


@pytest.mark.parametrize("order", [endpoints_pb2.DELIVERY_ORDER_ORDERED, endpoints_pb2.DELIVERY_ORDER_UNORDERED])
async def test_a_paused_endpoints_deliveries_wait_and_go_out_in_order_on_resume(
    database_url, registry, receiver: Receiver, order
):
    account = new_account()
    async with running_sender(database_url, registry, **RARE_POLLS) as sender:
        endpoint = await create_endpoint(sender, account, receiver.url("hook"), order=order)
        paused = await pause(sender, account, endpoint.id)
        assert paused.paused
        ids = await deliver_events(sender, account, endpoint.id, 12)
        await wait_until_held(sender, account, ids)
        more = await deliver_events(sender, account, endpoint.id, 8)  # still accepted, and kept too
        await wait_until_held(sender, account, more)
        ids += more
        assert receiver.on("hook") == []

        resumed_at = time.monotonic()
        assert not (await resume(sender, account, endpoint.id)).paused
        await eventually(lambda: len(receiver.on("hook")) == len(ids), timeout=10, message="all sent")
        assert receiver.on("hook")[-1].at - resumed_at < 3
        delivered = [await wait_for_status(sender, account, delivery_id, SUCCEEDED) for delivery_id in ids]
        assert [d.attempt_count for d in delivered] == [1] * len(ids)
        # Sent in the order they arrived: one at a time to the ordered endpoint, so they arrive so;
        # to the unordered one several at once, each started in turn.
        assert sorted(r.headers["webhook-id"] for r in receiver.on("hook")) == sorted(ids)
        if order == endpoints_pb2.DELIVERY_ORDER_ORDERED:
            assert [r.headers["webhook-id"] for r in receiver.on("hook")] == ids
        starts = [d.attempts[0].start_time.ToDatetime() for d in delivered]
        assert starts == sorted(starts)


async def test_a_paused_endpoint_that_is_disabled_or_deleted_fails_its_kept_deliveries(
    database_url, registry, receiver: Receiver
):
    """Disabling stays "stop and fail", paused or not; a deletion fails them as before."""
    account = new_account()
    me = identity_metadata(account)
    async with running_sender(database_url, registry, **RARE_POLLS) as sender:
        disabled = await create_endpoint(sender, account, receiver.url("disabled"))
        deleted = await create_endpoint(sender, account, receiver.url("deleted"))
        for endpoint in (disabled, deleted):
            await pause(sender, account, endpoint.id)
        kept = {endpoint.id: await deliver_events(sender, account, endpoint.id, 3) for endpoint in (disabled, deleted)}
        for ids in kept.values():
            await wait_until_held(sender, account, ids)

        await sender.endpoints.UpdateEndpoint(
            endpoints_pb2.UpdateEndpointRequest(
                endpoint=endpoints_pb2.Endpoint(id=disabled.id, enabled=False), update_mask={"paths": ["enabled"]}
            ),
            metadata=me,
        )
        await sender.endpoints.DeleteEndpoint(endpoints_pb2.DeleteEndpointRequest(id=deleted.id), metadata=me)
        for endpoint_id, error in ((disabled.id, "endpoint disabled"), (deleted.id, "endpoint deleted")):
            for delivery_id in kept[endpoint_id]:
                failed = await wait_for_status(sender, account, delivery_id, FAILED, timeout=10)
                assert failed.attempt_count == 0 and failed.last_error == error

        # A disabled endpoint that is paused receives nothing: its new deliveries fail at once.
        [new] = await deliver_events(sender, account, disabled.id, 1)
        assert (await wait_for_status(sender, account, new, FAILED)).last_error == "endpoint disabled"
        assert receiver.received == []


async def test_a_resume_while_no_sender_ran_is_seen_when_one_starts(database_url, registry, receiver: Receiver):
    account = new_account()
    async with running_sender(database_url, registry, **RARE_POLLS) as sender:
        endpoint = await create_endpoint(sender, account, receiver.url("hook"))
        await pause(sender, account, endpoint.id)
        ids = await deliver_events(sender, account, endpoint.id, 3)
        await wait_until_held(sender, account, ids)
    async with channel(registry) as registry_channel:  # no sender runs: none hears of the resume
        await endpoints_pb2_grpc.EndpointServiceStub(registry_channel).ResumeEndpoint(
            endpoints_pb2.ResumeEndpointRequest(id=endpoint.id), metadata=identity_metadata(account)
        )
    assert receiver.on("hook") == []

    async with running_sender(database_url, registry, **RARE_POLLS) as sender:
        await eventually(lambda: len(receiver.on("hook")) == len(ids), timeout=10, message="sent after the start")
        for delivery_id in ids:
            await wait_for_status(sender, account, delivery_id, SUCCEEDED)


async def test_two_senders_both_hear_of_the_resume_and_send_each_kept_delivery_once(
    database_url, registry, receiver: Receiver
):
    account = new_account()
    async with (
        running_sender(database_url, registry, **RARE_POLLS) as first,
        running_sender(database_url, registry, **RARE_POLLS) as second,
    ):
        endpoint = await create_endpoint(first, account, receiver.url("shared"))
        await pause(first, account, endpoint.id)
        ids = await deliver_events(first, account, endpoint.id, 10) + await deliver_events(
            second, account, endpoint.id, 10
        )
        await wait_until_held(first, account, ids)
        await resume(second, account, endpoint.id)
        await eventually(lambda: len(receiver.on("shared")) >= len(ids), timeout=10, message="all sent")
        for delivery_id in ids:
            assert (await wait_for_status(first, account, delivery_id, SUCCEEDED)).attempt_count == 1
    assert sorted(r.headers["webhook-id"] for r in receiver.on("shared")) == sorted(ids)  # each once


async def test_a_test_message_to_a_paused_endpoint_is_kept_and_sent_on_resume(sender: Sender, receiver: Receiver):
    """SendTestMessage answers at once with the delivery as it stands, held; it goes with the others."""
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("hook"))
    await pause(sender, account, endpoint.id)
    tested = (
        await sender.deliveries.SendTestMessage(
            deliveries_pb2.SendTestMessageRequest(endpoint_id=endpoint.id), metadata=identity_metadata(account)
        )
    ).delivery
    assert tested.status == PENDING and tested.last_error == HELD and tested.attempt_count == 0
    await resume(sender, account, endpoint.id)
    await wait_for_status(sender, account, tested.id, SUCCEEDED, timeout=10)
    assert [r.headers["webhook-id"] for r in receiver.on("hook")] == [tested.id]
