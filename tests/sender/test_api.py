"""The account-scoped calls: get and list (filters, pages, newest first), retry, watch, test
message, and tenancy (another account's delivery or endpoint is NOT_FOUND; no identity is
UNAUTHENTICATED)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2
from sqlalchemy import event as sql_events

from hooks.registry.v1 import endpoints_pb2
from hooks.sender.v1 import deliveries_pb2
from services.common.errors import field_violations_of
from services.common.identity import identity_metadata
from services.sender.servicer import MAX_PAGE_BYTES
from tests.helpers.sender import (
    answers,
    create_endpoint,
    deliver,
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


async def _list(sender, account, **fields) -> deliveries_pb2.ListDeliveriesResponse:
    return await sender.deliveries.ListDeliveries(
        deliveries_pb2.ListDeliveriesRequest(**fields), metadata=identity_metadata(account)
    )


async def test_list_filters_pages_newest_first(sender, receiver):
    account = new_account()
    receiver.script["bad"] = answers(400)
    good = await create_endpoint(sender, account, receiver.url("good"))
    bad = await create_endpoint(sender, account, receiver.url("bad"))
    ids = []
    for _ in range(5):
        [response] = await deliver(sender, request_for(make_event(account), good.id))
        ids.append(response.delivery_ids[0])
    event = make_event(account)
    [to_bad] = await deliver(sender, request_for(event, bad.id))
    await wait_for_status(sender, account, to_bad.delivery_ids[0], FAILED)
    for delivery_id in ids:
        await wait_for_status(sender, account, delivery_id, SUCCEEDED)

    seen, token = [], ""
    while True:
        page = await _list(sender, account, endpoint_id=good.id, page_size=2, page_token=token)
        assert len(page.deliveries) <= 2
        seen += [d.id for d in page.deliveries]
        assert all([a.http_status for a in d.attempts] == [200] for d in page.deliveries)
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))  # newest first, each once

    failed = await _list(sender, account, status=FAILED)
    assert [d.id for d in failed.deliveries] == [to_bad.delivery_ids[0]]
    by_event = await _list(sender, account, event_id=event.id)
    assert [d.endpoint_id for d in by_event.deliveries] == [bad.id]
    assert by_event.deliveries[0].event.id == event.id
    assert by_event.deliveries[0].event.message.string_value == "disk almost full"
    by_application = await _list(sender, account, application=event.application, page_size=1000)
    assert len(by_application.deliveries) == len(ids) + 1 and not by_application.next_page_token
    assert (await _list(sender, account, application=f"not-{event.application}")).deliveries == []

    assert (await _list(sender, new_account())).deliveries == []  # another account sees nothing

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await _list(sender, account, page_token="not-a-token")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations_of(error.value)[0][0] == "page_token"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await _list(sender, account, page_size=-1)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_shows_every_attempt_of_each_delivery_oldest_first_in_one_query_per_page(sender, receiver):
    """ListDeliveries' deliveries carry their attempts as GetDelivery does (not `attempts: []` beside
    `attempt_count: 2`), read for the whole page at once: one SELECT of attempts per page, however
    many deliveries it holds."""
    account = new_account()
    receiver.script["flaky"] = answers(503, 200, 503, 200, 503, 200)
    flaky = await create_endpoint(sender, account, receiver.url("flaky"))
    steady = await create_endpoint(sender, account, receiver.url("steady"))
    ids = []
    for endpoint in (flaky, steady, flaky, steady, flaky):
        [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
        ids.append(response.delivery_ids[0])
        await wait_for_status(sender, account, ids[-1], SUCCEEDED)

    statements: list[str] = []

    def count(_connection, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM attempts" in statement:
            statements.append(statement)

    engine = sender.server.sender.store.engine.sync_engine
    sql_events.listen(engine, "before_cursor_execute", count)
    try:
        page = await _list(sender, account, page_size=10)
    finally:
        sql_events.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements
    assert [d.id for d in page.deliveries] == list(reversed(ids))
    for listed in page.deliveries:
        got = (
            await sender.deliveries.GetDelivery(
                deliveries_pb2.GetDeliveryRequest(id=listed.id), metadata=identity_metadata(account)
            )
        ).delivery
        assert list(listed.attempts) == list(got.attempts) and len(listed.attempts) == listed.attempt_count
        expected = [503, 200] if listed.endpoint_id == flaky.id else [200]
        assert [a.http_status for a in listed.attempts] == expected
        assert [a.number for a in listed.attempts] == list(range(1, len(expected) + 1))


async def test_list_by_creation_time(sender, receiver):
    """ "What failed in the last hour": created_after and created_before bound the list, pages included."""
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("timed"))
    [early] = await deliver(sender, request_for(make_event(account), endpoint.id))
    first = await wait_for_status(sender, account, early.delivery_ids[0], SUCCEEDED)
    later = []
    while len(later) < 3:  # created after the first one's creation time, to the microsecond
        [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
        delivery = await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
        if delivery.create_time.ToDatetime() > first.create_time.ToDatetime():
            later.append(delivery)
    cut = first.create_time.ToDatetime() + (later[0].create_time.ToDatetime() - first.create_time.ToDatetime()) / 2
    bound = timestamp_pb2.Timestamp()
    bound.FromDatetime(cut)

    seen, token = [], ""
    while True:
        page = await _list(sender, account, created_after=bound, page_size=2, page_token=token)
        seen += [d.id for d in page.deliveries]
        token = page.next_page_token
        if not token:
            break
    assert seen == [d.id for d in reversed(later)]
    before = await _list(sender, account, created_before=bound)
    assert [d.id for d in before.deliveries] == [first.id]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await _list(sender, account, created_after=bound, created_before=first.create_time)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations_of(error.value)[0][0] == "created_before"
    with pytest.raises(grpc.aio.AioRpcError) as error:  # a page token belongs to its query
        await _list(
            sender,
            account,
            created_before=bound,
            page_token=(await _list(sender, account, page_size=1)).next_page_token,
        )
    assert field_violations_of(error.value)[0][0] == "page_token"


async def test_retry_deliveries_queues_the_failed_ones_again_bounded_and_counted(sender, receiver):
    """Svix's "recover": the account's FAILED deliveries (of an endpoint, of a time range) go out again."""
    account, other = new_account(), new_account()
    receiver.script["flaky"] = answers(400, 400, 400, 200)  # fails each first attempt, then takes them
    flaky = await create_endpoint(sender, account, receiver.url("flaky"))
    fine = await create_endpoint(sender, account, receiver.url("fine"))
    theirs = await create_endpoint(sender, other, receiver.url("flaky"))
    failed = []
    for endpoint, owner in ((flaky, account), (flaky, account), (theirs, other)):
        [response] = await deliver(sender, request_for(make_event(owner), endpoint.id))
        failed.append(await wait_for_status(sender, owner, response.delivery_ids[0], FAILED))
    [ok] = await deliver(sender, request_for(make_event(account), fine.id))
    await wait_for_status(sender, account, ok.delivery_ids[0], SUCCEEDED)
    me = identity_metadata(account)

    later = timestamp_pb2.Timestamp()
    later.FromDatetime(max(d.create_time.ToDatetime() for d in failed) + timedelta(seconds=1))
    none = await sender.deliveries.RetryDeliveries(
        deliveries_pb2.RetryDeliveriesRequest(created_after=later), metadata=me
    )
    assert (none.queued, none.more) == (0, False)

    answer = await sender.deliveries.RetryDeliveries(
        deliveries_pb2.RetryDeliveriesRequest(endpoint_id=flaky.id), metadata=me
    )
    assert (answer.queued, answer.more) == (2, False)
    for delivery in failed[:2]:
        retried = await wait_for_status(sender, account, delivery.id, SUCCEEDED)
        assert retried.attempt_count == 2
    their = await sender.deliveries.GetDelivery(
        deliveries_pb2.GetDeliveryRequest(id=failed[2].id), metadata=identity_metadata(other)
    )
    assert their.delivery.status == FAILED  # another account's failures are its own
    again = await sender.deliveries.RetryDeliveries(deliveries_pb2.RetryDeliveriesRequest(), metadata=me)
    assert again.queued == 0  # nothing failed is left

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await sender.deliveries.RetryDeliveries(
            deliveries_pb2.RetryDeliveriesRequest(created_after=later, created_before=failed[0].create_time),
            metadata=me,
        )
    assert field_violations_of(error.value) == [("created_before", "must be later than created_after")]


async def test_tenancy(sender, receiver):
    account, other = new_account(), new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("mine"))
    [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
    delivery_id = response.delivery_ids[0]
    await wait_for_status(sender, account, delivery_id, SUCCEEDED)

    calls = [
        lambda md: sender.deliveries.GetDelivery(deliveries_pb2.GetDeliveryRequest(id=delivery_id), metadata=md),
        lambda md: sender.deliveries.RetryDelivery(deliveries_pb2.RetryDeliveryRequest(id=delivery_id), metadata=md),
        lambda md: sender.deliveries.SendTestMessage(
            deliveries_pb2.SendTestMessageRequest(endpoint_id=endpoint.id), metadata=md
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call(identity_metadata(other))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call(())
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await sender.deliveries.ListDeliveries(deliveries_pb2.ListDeliveriesRequest())
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in sender.deliveries.WatchDeliveries(
            deliveries_pb2.WatchDeliveriesRequest(), metadata=(("x-rh-identity", "garbage"),)
        ):
            pass
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Nothing changed: the other account's retry did not queue anything.
    assert len(receiver.on("mine")) == 1


async def test_retry_queues_a_new_attempt(sender, receiver):
    account = new_account()
    receiver.script["fixed"] = answers(400, 200)
    endpoint = await create_endpoint(sender, account, receiver.url("fixed"))
    [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
    delivery_id = response.delivery_ids[0]
    await wait_for_status(sender, account, delivery_id, FAILED)

    retried = await sender.deliveries.RetryDelivery(
        deliveries_pb2.RetryDeliveryRequest(id=delivery_id), metadata=identity_metadata(account)
    )
    assert retried.delivery.status == PENDING

    delivery = await wait_for_status(sender, account, delivery_id, SUCCEEDED)
    assert [a.http_status for a in delivery.attempts] == [400, 200]

    # A replay of a delivery that succeeded sends it once more.
    await sender.deliveries.RetryDelivery(
        deliveries_pb2.RetryDeliveryRequest(id=delivery_id), metadata=identity_metadata(account)
    )
    await eventually(lambda: len(receiver.on("fixed")) == 3)
    delivery = await wait_for_status(sender, account, delivery_id, SUCCEEDED)
    assert delivery.attempt_count == 3


async def test_watch_streams_the_accounts_status_changes(sender, receiver):
    account = new_account()
    receiver.script["watched"] = answers(500, 200)
    watched = await create_endpoint(sender, account, receiver.url("watched"))
    other_endpoint = await create_endpoint(sender, account, receiver.url("unwatched"))
    other_account = new_account()
    foreign = await create_endpoint(sender, other_account, receiver.url("foreign"))

    changes: list[deliveries_pb2.Delivery] = []
    call = sender.deliveries.WatchDeliveries(
        deliveries_pb2.WatchDeliveriesRequest(endpoint_id=watched.id), metadata=identity_metadata(account)
    )

    async def collect():
        async for change in call:
            changes.append(change.delivery)

    collector = asyncio.create_task(collect())
    await eventually(lambda: sender.server.sender.hub.wants(account))
    try:
        await deliver(sender, request_for(make_event(other_account), foreign.id))
        await deliver(sender, request_for(make_event(account), other_endpoint.id))
        [response] = await deliver(sender, request_for(make_event(account), watched.id))
        await eventually(lambda: changes and changes[-1].status == SUCCEEDED)
    finally:
        call.cancel()
        await asyncio.gather(collector, return_exceptions=True)

    assert {c.id for c in changes} == {response.delivery_ids[0]}
    assert [(c.status, c.attempt_count) for c in changes] == [(PENDING, 0), (PENDING, 1), (SUCCEEDED, 2)]
    assert changes[1].last_error == "HTTP 500" and changes[1].HasField("next_attempt_time")


async def test_send_test_message_returns_the_delivery_after_its_first_attempt(sender, receiver):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("test"), type=endpoints_pb2.ENDPOINT_TYPE_SLACK)

    response = await sender.deliveries.SendTestMessage(
        deliveries_pb2.SendTestMessageRequest(endpoint_id=endpoint.id, message="hello from the console"),
        metadata=identity_metadata(account),
    )

    delivery = response.delivery
    assert delivery.status == SUCCEEDED and delivery.attempt_count == 1
    assert delivery.attempts[0].http_status == 200
    assert (delivery.event.application, delivery.event.event_type) == ("hooks", "test")
    [received] = receiver.on("test")
    assert b"hello from the console" in received.body

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await sender.deliveries.SendTestMessage(
            deliveries_pb2.SendTestMessageRequest(endpoint_id="no-such-endpoint"), metadata=identity_metadata(account)
        )
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await sender.deliveries.SendTestMessage(
            deliveries_pb2.SendTestMessageRequest(), metadata=identity_metadata(account)
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_retry_honours_what_the_account_changed_since(database_url, registry, receiver):
    """Endpoint details are read at attempt time (through a cache the registry's change stream
    keeps fresh): a change in the registry reaches the next attempt."""
    account = new_account()
    receiver.script["before"] = answers(503)
    async with running_sender(database_url, registry, sender_retry_schedule="1s,1s,1s") as sender:
        endpoint = await create_endpoint(sender, account, receiver.url("before"))
        [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
        await eventually(lambda: receiver.on("before"))

        endpoint.target = receiver.url("after")
        await sender.endpoints.UpdateEndpoint(
            endpoints_pb2.UpdateEndpointRequest(endpoint=endpoint, update_mask={"paths": ["target"]}),
            metadata=identity_metadata(account),
        )

        delivery = await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
    assert len(receiver.on("before")) == 1 and len(receiver.on("after")) == 1
    assert [a.http_status for a in delivery.attempts] == [503, 200]


async def test_a_page_is_bounded_in_bytes_and_the_token_goes_on_from_where_it_ended(sender, receiver):
    """50 events of 230 KB (the default page size) would make an 11 MB answer, over the 4 MiB any gRPC
    message may have: a page ends before MAX_PAGE_BYTES, and always holds at least one delivery."""
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("large"))
    requests = [request_for(make_event(account, "x" * 230_000), endpoint.id) for _ in range(50)]
    huge = request_for(make_event(account, "y" * (MAX_PAGE_BYTES + 100_000)), endpoint.id)  # newest
    ids = []
    for request in [*requests, huge]:
        [response] = await deliver(sender, request)
        ids.append(response.delivery_ids[0])

    pages, token = [], ""
    while True:
        page = await _list(sender, account, page_token=token)
        pages.append(page)
        token = page.next_page_token
        if not token:
            break
    assert [d.id for page in pages for d in page.deliveries] == list(reversed(ids))  # each once, newest first
    assert [d.id for d in pages[0].deliveries] == [ids[-1]]  # larger than a page: alone on its own
    assert all(page.ByteSize() <= MAX_PAGE_BYTES for page in pages[1:])
    assert len(pages) > 3
    assert sum(len(page.deliveries) for page in pages[1:]) == 50
