"""Errors come out as proper codes (issue 8, finding 10): with the sender's database gone, every call
answers UNAVAILABLE (try again) with a message that names no Python class and no internals, Deliver
per request on a stream that stays up; bad input is INVALID_ARGUMENT, a missing delivery NOT_FOUND."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.rpc import code_pb2
from sqlalchemy.engine import make_url

from hooks.sender.v1 import deliveries_pb2
from services.common.identity import identity_metadata
from tests.helpers.registry import running_registry
from tests.helpers.sender import (
    create_endpoint,
    deliver,
    make_event,
    new_account,
    request_for,
    running_sender,
    wait_for_status,
)

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED
LEAKS = ("Error", "Exception", "<class", "Traceback", "sqlalchemy", "asyncpg", "postgres", "hooks_test_")


@pytest_asyncio.fixture
async def registry(sqlite_url):
    """The registry on a database of its own, so that the sender's can go away alone."""
    async with running_registry(sqlite_url, registry_change_poll_seconds=0.05) as (_server, port):
        yield f"127.0.0.1:{port}"


async def take_away(database_url: str) -> None:
    """The database goes away: it refuses new connections, and those it had are cut."""
    url = make_url(database_url)
    connection = await asyncpg.connect(url.set(database="postgres").render_as_string(hide_password=False))
    try:
        await connection.execute(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false')
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", url.database
        )
    finally:
        await connection.close()


def assert_unavailable(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
    assert "database" in error.details()
    for leak in LEAKS:
        assert leak not in error.details(), error.details()


async def test_with_its_database_gone_every_call_is_unavailable(pg_url, registry, receiver):
    account = new_account()
    async with running_sender(pg_url, registry) as sender:
        endpoint = await create_endpoint(sender, account, receiver.url("gone"))
        [answer] = await deliver(sender, request_for(make_event(account), endpoint.id))
        delivery_id = answer.delivery_ids[0]
        await wait_for_status(sender, account, delivery_id, SUCCEEDED)

        await take_away(pg_url)

        metadata = identity_metadata(account)
        calls = {
            "GetDelivery": lambda: sender.deliveries.GetDelivery(
                deliveries_pb2.GetDeliveryRequest(id=delivery_id), metadata=metadata
            ),
            "ListDeliveries": lambda: sender.deliveries.ListDeliveries(
                deliveries_pb2.ListDeliveriesRequest(), metadata=metadata
            ),
            "RetryDelivery": lambda: sender.deliveries.RetryDelivery(
                deliveries_pb2.RetryDeliveryRequest(id=delivery_id), metadata=metadata
            ),
            "SendTestMessage": lambda: sender.deliveries.SendTestMessage(
                deliveries_pb2.SendTestMessageRequest(endpoint_id=endpoint.id), metadata=metadata
            ),
        }
        messages = set()
        for call in calls.values():
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await call()
            assert_unavailable(error.value)
            messages.add(error.value.details())

        requests = [request_for(make_event(account), endpoint.id) for _ in range(3)]
        answers = await deliver(sender, *requests)
        assert [a.request_id for a in answers] == [r.request_id for r in requests]
        for answer in answers:
            assert answer.status.code == code_pb2.UNAVAILABLE and not answer.delivery_ids
            messages.add(answer.status.message)
        # One error mapping: every call, unary or per request on a stream, says the same.
        assert messages == {"the sender's database is unavailable; try again shortly"}


async def test_bad_input_and_missing_deliveries_get_their_codes(sender):
    account = new_account()
    metadata = identity_metadata(account)
    cases = [
        (sender.deliveries.GetDelivery(deliveries_pb2.GetDeliveryRequest(), metadata=metadata), "INVALID_ARGUMENT"),
        (sender.deliveries.GetDelivery(deliveries_pb2.GetDeliveryRequest(id="nope"), metadata=metadata), "NOT_FOUND"),
        (
            sender.deliveries.RetryDelivery(deliveries_pb2.RetryDeliveryRequest(id="nope"), metadata=metadata),
            "NOT_FOUND",
        ),
        (
            sender.deliveries.ListDeliveries(deliveries_pb2.ListDeliveriesRequest(status=42), metadata=metadata),
            "INVALID_ARGUMENT",
        ),
    ]
    for call, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        assert error.value.code().name == code, error.value.details()
