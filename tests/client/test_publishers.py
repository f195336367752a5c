"""hooks_client's publishers against the real system: Kafka (sync and async) and gRPC (sync and async)
messages are delivered to a real receiver, each under the id the publisher gave it; a message the
matcher would dead-letter is refused before it is sent."""

from __future__ import annotations

import asyncio
import json
import math
import uuid

import pytest

from hooks.registry.v1 import applications_pb2, endpoints_pb2
from hooks_client import (
    AsyncGrpcPublisher,
    AsyncPublisher,
    GrpcPublisher,
    Publisher,
    PublishRefused,
    Rejected,
)
from hooks_client.limits import MAX_DEPTH
from tests.helpers.stack import running_stack
from tests.helpers.waiting import eventually

APP = applications_pb2.Application(
    name="shop",
    title="Shop",
    event_types=[
        applications_pb2.EventType(
            id="order-placed", title="Order placed", levels=[applications_pb2.Level(id="big", title="Big")]
        ),
        applications_pb2.EventType(id="order-shipped", title="Order shipped"),
    ],
)
ACCOUNT = "acct-client"


def delivered_ids(stack, path: str) -> list[str]:
    return [json.loads(request.body)["id"] for request in stack.receiver.at(path)]


@pytest.fixture
async def stack(sqlite_url, kafka, topics):
    async with running_stack(sqlite_url, kafka.bootstrap_servers, topics) as running:
        await running.register(APP)
        await running.subscribe(ACCOUNT, "/hook")
        yield running


async def test_every_publisher_delivers_under_its_id(stack):
    sent: dict[str, str] = {}  # id -> which publisher

    def sync_kafka() -> None:
        with Publisher(bootstrap_servers=stack.bootstrap, topic=stack.kafka.topic) as publisher:
            given = publisher.publish(application="shop", event_type="order-placed", level="big",
                                      message={"order": 1, "total": 12.5}, account_id=ACCOUNT)  # fmt: skip
            assert given.topic == stack.kafka.topic and given.offset >= 0
            sent[given.id] = "Publisher"
            chosen = f"order-{uuid.uuid4()}"
            again = publisher.publish(application="shop", event_type="order-shipped", message="shipped",
                                      account_id=ACCOUNT, id=chosen)  # fmt: skip
            assert again.id == chosen
            sent[chosen] = "Publisher with an id"
            futures = [
                publisher.submit(application="shop", event_type="order-shipped", message=n, account_id=ACCOUNT)
                for n in range(3)
            ]
        # Leaving the block flushed them: every future is settled.
        for future in futures:
            sent[future.result(0).id] = "Publisher.submit"

    await asyncio.to_thread(sync_kafka)

    async with AsyncPublisher(bootstrap_servers=stack.bootstrap, topic=stack.kafka.topic) as publisher:
        given = await publisher.publish(application="shop", event_type="order-placed", level="big",
                                        message=["a", "b"], account_id=ACCOUNT)  # fmt: skip
        sent[given.id] = "AsyncPublisher"

    def sync_grpc() -> None:
        with GrpcPublisher(target=stack.matcher_target) as publisher:
            given = publisher.publish(
                application="shop", event_type="order-shipped", message={"via": "grpc"}, account_id=ACCOUNT
            )
            assert given.topic == stack.kafka.topic
            sent[given.id] = "GrpcPublisher"

    await asyncio.to_thread(sync_grpc)

    async with AsyncGrpcPublisher(target=stack.matcher_target) as publisher:
        given = await publisher.publish(application="shop", event_type="order-placed", level="big",
                                        message={"via": "aio"}, account_id=ACCOUNT)  # fmt: skip
        sent[given.id] = "AsyncGrpcPublisher"

    await eventually(lambda: set(sent) <= set(delivered_ids(stack, "/hook")), message=f"deliveries of {sent}")
    bodies = {json.loads(r.body)["id"]: json.loads(r.body) for r in stack.receiver.at("/hook")}
    aio = next(i for i, kind in sent.items() if kind == "AsyncGrpcPublisher")
    assert bodies[aio]["message"] == {"via": "aio"} and bodies[aio]["account_id"] == ACCOUNT
    assert not await stack.dead_letters.read()


#: One level deeper than limits.MAX_DEPTH allows.
DEEP: list = [1]
for _ in range(MAX_DEPTH):
    DEEP = [DEEP]

BAD = [
    ({"level": "big\x00"}, "invalid_value", "level"),
    ({"application": ""}, "invalid_value", "application"),
    ({"message": {"x": math.nan}}, "invalid_value", "message"),
    ({"message": {"x": "\ud800"}}, "invalid_value", "message"),
    ({"message": DEEP}, "invalid_value", "message"),
    ({"message": "x" * (300 * 1024)}, "too_large", ""),
    ({"timestamp": "yesterday"}, "invalid_timestamp", "timestamp"),
    ({"account_id": 42}, "invalid_type", "account_id"),
]


@pytest.mark.parametrize(("change", "reason", "field"), BAD)
async def test_what_the_matcher_would_dead_letter_is_refused_before_sending(stack, change, reason, field):
    fields = {
        "application": "shop",
        "event_type": "order-shipped",
        "level": "",
        "message": "m",
        "account_id": ACCOUNT,
        **change,
    }
    with Publisher(bootstrap_servers=stack.bootstrap, topic=stack.kafka.topic) as publisher:
        with pytest.raises(Rejected) as refused:
            publisher.publish(**fields)
    assert (refused.value.reason, refused.value.field) == (reason, field)
    async with AsyncGrpcPublisher(target=stack.matcher_target) as publisher:
        with pytest.raises(Rejected):
            await publisher.publish(**fields)
    # Nothing reached the topic: a probe published after them is the first record there.
    with Publisher(bootstrap_servers=stack.bootstrap, topic=stack.kafka.topic) as publisher:
        probe = publisher.publish(application="shop", event_type="order-shipped", message="probe", account_id=ACCOUNT)
    assert probe.offset == 0


async def test_grpc_refusal_names_the_unregistered_field(stack):
    async with AsyncGrpcPublisher(target=stack.matcher_target) as publisher:
        with pytest.raises(PublishRefused) as refused:
            await publisher.publish(application="shop", event_type="no-such-type", message="m", account_id=ACCOUNT)
    assert [field for field, _ in refused.value.violations] == ["event_type"]


async def test_messages_published_with_one_key_reach_an_ordered_endpoint_in_that_order(stack):
    """1,000 messages published with one key go to one partition; an ORDERED endpoint receives them
    in the order published through Kafka, the matcher and the sender, the 50th failing once and
    nothing overtaking it before its retry succeeds."""
    account = f"acct-ordered-{uuid.uuid4().hex[:8]}"
    await stack.subscribe(account, "/ordered", endpoint_fields={"order": endpoints_pb2.DELIVERY_ORDER_ORDERED})
    stack.receiver.script["/ordered"] = [200] * 49 + [500]

    def publish() -> None:
        with Publisher(bootstrap_servers=stack.bootstrap, topic=stack.kafka.topic) as publisher:
            for n in range(1000):
                publisher.submit(
                    application="shop", event_type="order-shipped", message=n, account_id=account, key=account
                )

    await asyncio.to_thread(publish)
    await eventually(lambda: len(stack.receiver.at("/ordered")) >= 1001, timeout=60)
    received = [json.loads(r.body)["message"] for r in stack.receiver.at("/ordered")]
    assert received == list(range(50)) + list(range(49, 1000))  # the 50th twice, nothing overtaking it
