"""The matcher's sender streams (SenderPool) against the real sender: a request that cannot be carried
fails alone, before anything is written, and the streams stay up; a stream whose call ends is re-opened."""

from __future__ import annotations

import uuid

import pytest
from google.protobuf import struct_pb2

from hooks.sender.v1 import deliveries_pb2
from services.common.channels import channel
from services.matcher.senders import SenderPool, Unsendable
from tests.helpers.matcher import ACCOUNT, APP, EVENT_TYPE, LEVEL
from tests.helpers.waiting import eventually

PROMPT = 2.0  # seconds within which a sender acknowledges a request on a working stream


def request(endpoint_id: str, value: struct_pb2.Value | None = None) -> deliveries_pb2.DeliverRequest:
    """A request built in place (copying a message parses it, and protobuf parses at most 100 levels)."""
    built = deliveries_pb2.DeliverRequest(endpoint_ids=[endpoint_id])
    event = built.event
    event.id, event.application, event.event_type = f"pool-{uuid.uuid4().hex[:8]}", APP, EVENT_TYPE
    event.level, event.account_id = LEVEL, ACCOUNT
    event.timestamp.GetCurrentTime()
    if value is not None:
        event.message.CopyFrom(value)
    else:
        event.message.string_value = "fine"
    return built


def lists(depth: int) -> struct_pb2.Value:
    root = struct_pb2.Value()
    value = root
    for _ in range(depth):
        value = value.list_value.values.add()
    value.string_value = "deep"
    return root


@pytest.fixture
async def pool(sender):
    async with channel(sender.target) as ch:
        pool = SenderPool(ch, streams=2, timeout=PROMPT, max_backoff=0.5, max_message_bytes=256 * 1024)
        pool.start()
        try:
            await eventually(lambda: pool.connected == 2, message="both streams open")
            yield pool
        finally:
            await pool.stop()


async def acknowledged(pool: SenderPool, endpoint_id: str, count: int = 6) -> None:
    """`count` requests in a row, each acknowledged promptly (so on every stream in turn)."""
    for _ in range(count):
        _, response, failure = await pool.deliver_once(request(endpoint_id))
        assert failure is None and response is not None and len(response.delivery_ids) == 1


async def test_a_request_a_sender_could_not_parse_fails_alone_and_the_streams_stay_up(pool, registry, receiver):
    """60 levels serialise but no protobuf parser reads them back (it stops at 100 levels): written, such
    a request used to end the stream it was on for good (49 levels did, inside a DeliverBatchRequest)."""
    endpoint = await registry.endpoint(receiver.url("pool"))
    for depth in (49, 60):
        _, response, failure = await pool.deliver_once(request(endpoint.id, lists(depth)))
        assert response is None and isinstance(failure, Unsendable) and not failure.too_large, failure
    await acknowledged(pool, endpoint.id)
    assert pool.connected == 2


async def test_a_request_larger_than_a_grpc_message_fails_alone_as_too_large(pool, registry, receiver):
    endpoint = await registry.endpoint(receiver.url("pool"))
    big = struct_pb2.Value(string_value="x" * (300 * 1024))
    _, response, failure = await pool.deliver_once(request(endpoint.id, big))
    assert response is None and isinstance(failure, Unsendable) and failure.too_large
    assert "larger than one gRPC message" in str(failure)
    await acknowledged(pool, endpoint.id)


async def test_a_stream_whose_sender_went_away_is_re_opened(pool, sender, registry, receiver):
    endpoint = await registry.endpoint(receiver.url("pool"))
    await acknowledged(pool, endpoint.id)
    await sender.stop()
    await eventually(lambda: pool.connected == 0, message="no stream is usable while the sender is down")
    await sender.start()
    await eventually(lambda: pool.connected == 2, message="both streams re-opened")
    await acknowledged(pool, endpoint.id)
