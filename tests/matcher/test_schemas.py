"""Event-type JSON Schemas are enforced: a message whose `message` breaks its event type's schema is
dead-lettered as `schema_violation` naming the JSON pointer of the first error (PublishMessage refuses
it, naming `message` and the pointer), the messages around it are delivered, an event type without a
schema takes anything, and registering the application again with another schema applies to the next
messages."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from hooks.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from services.common.channels import channel
from services.common.errors import field_violations_of
from services.common.identity import identity_metadata
from services.matcher.schemas import json_pointer
from tests.helpers.matcher import ACCOUNT, APP, EVENT_TYPE, LEVEL, PLAIN_TYPE, message, running_matcher
from tests.helpers.waiting import eventually

ORDER = {
    "type": "object",
    "required": ["text", "items"],
    "properties": {
        "text": {"type": "string"},
        "items": {
            "type": "array",
            "items": {"type": "object", "required": ["price"], "properties": {"price": {"type": "number"}}},
        },
        "sent": {"type": "string", "format": "date-time"},
    },
}

# (message, where the error is, what the dead letter says)
BREAKING = [
    ({"text": "bad-price", "items": [{"price": 1}, {"price": "3"}]}, "at /items/1/price", 'is not of type "number"'),
    ({"text": "bad-date", "items": [], "sent": "yesterday"}, "at /sent", 'is not a "date-time"'),  # formats checked
    ({"text": "no-items"}, "as a whole", '"items" is a required property'),
    ("just text", "as a whole", 'is not of type "object"'),
]


def dead_letter_texts(records) -> dict[int, tuple[str, str]]:
    """offset -> (reason, message) of each dead letter."""
    found = {}
    for record in records:
        headers = {name: value.decode() for name, value in record.headers()}
        found[int(headers["hooks.error.offset"])] = (headers["hooks.error.reason"], headers["hooks.error.message"])
    return found


async def test_a_message_breaking_its_schema_is_dead_lettered_naming_the_pointer_and_the_next_is_delivered(
    broker, registry, sender, receiver
):
    await registry.register(schemas={EVENT_TYPE: ORDER})
    endpoint = await registry.endpoint(receiver.url("orders"))
    await registry.filter([endpoint.id], applications=[APP])

    records: list = []
    for index, (breaking, _, _) in enumerate(BREAKING):
        records.append(message(message=breaking))
        records.append(
            message(message={"text": f"good-{index}", "items": [{"price": 2.5}], "sent": "2026-11-27T10:00:00Z"})
        )
    # Another event type of the application, without a schema: any message.
    records.append(message(event_type=PLAIN_TYPE, level="", message={"text": "no-schema", "items": "anything"}))
    placed = await broker.aproduce(records, partition=0)

    async with running_matcher(broker, registry.target, sender.target) as matcher:
        goods = [f"good-{index}" for index in range(len(BREAKING))] + ["no-schema"]
        await eventually(
            lambda: set(goods) <= set(receiver.texts("orders")), message="every conforming message delivered"
        )
        dead = dead_letter_texts(await broker.aread(broker.dlq, len(BREAKING)))
        assert matcher.matcher.consumer.counters.dead_lettered == len(BREAKING)

    assert len(dead) == len(BREAKING)
    for index, (_, where, says) in enumerate(BREAKING):
        reason, description = dead[placed[2 * index][1]]
        assert reason == "schema_violation"
        assert f"field 'message' {where} breaks the schema of {APP}/{EVENT_TYPE}" in description, description
        assert says in description, description
    assert sorted(receiver.texts("orders")) == sorted(goods)  # nothing that broke the schema was delivered


async def test_registering_again_with_another_schema_applies_to_the_next_messages(broker, registry, sender, receiver):
    endpoint = await registry.endpoint(receiver.url("orders"))
    await registry.filter([endpoint.id], applications=[APP])
    await registry.register(schemas={EVENT_TYPE: ORDER})

    async with running_matcher(broker, registry.target, sender.target) as matcher:
        routes = matcher.matcher.routes
        await eventually(lambda: routes.live, message="the matcher follows the registry's changes")

        async def register_again(schemas) -> None:
            seen = routes.changes_applied
            await registry.register(schemas=schemas)
            await eventually(lambda: routes.changes_applied > seen, message="the matcher saw the registration")

        await broker.aproduce([message(message={"text": "old-shape-1", "items": []})])
        await eventually(lambda: "old-shape-1" in receiver.texts("orders"), message="the first message delivered")

        totals = {"type": "object", "required": ["text", "total"], "properties": {"total": {"type": "integer"}}}
        await register_again({EVENT_TYPE: totals})
        placed = await broker.aproduce(
            [message(message={"text": "old-shape-2", "items": []}), message(message={"text": "new-shape", "total": 3})]
        )
        await eventually(lambda: "new-shape" in receiver.texts("orders"), message="the new shape delivered")
        dead = dead_letter_texts(await broker.aread(broker.dlq, 1))
        assert dead[placed[0][1]][0] == "schema_violation"
        assert '"total" is a required property' in dead[placed[0][1]][1]

        await register_again(None)  # no schema any more: anything goes
        await broker.aproduce([message(message="free text")])
        await eventually(
            lambda: "free text" in str(receiver.on("orders")), message="a message without a schema delivered"
        )

    assert "old-shape-2" not in receiver.texts("orders")


async def test_no_message_can_hold_the_matcher_up_in_its_schema(broker, registry, sender, receiver):
    """Python's jsonschema backtracked on `^(a|aa)+$` (hours for 60 characters) and compared every pair
    of items for `uniqueItems` (6 s for 3,000 objects; 15,000 here), on the matcher's event loop, so one message held
    up every account's deliveries. Patterns now run in linear time and uniqueItems by hashing: the
    messages are judged at once and the next one is delivered promptly."""
    tricky = {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "name": {"type": "string", "pattern": "^(a|aa)+$"},
            "tags": {"type": "array", "uniqueItems": True},
        },
    }
    await registry.register(schemas={EVENT_TYPE: tricky})
    endpoint = await registry.endpoint(receiver.url("tricky"))
    await registry.filter([endpoint.id], applications=[APP])
    many = [{"t": index} for index in range(15_000)]
    placed = await broker.aproduce(
        [
            message(message={"text": "backtracking", "name": "a" * 60 + "!"}),
            message(message={"text": "unique", "tags": many}),
            message(message={"text": "repeated", "tags": [*many[:100], many[0]]}),
        ]
    )
    async with running_matcher(broker, registry.target, sender.target) as matcher:
        await eventually(lambda: "unique" in receiver.texts("tricky"), timeout=10, message="the unique tags delivered")
        dead = dead_letter_texts(await broker.aread(broker.dlq, 2))
        assert dead[placed[0][1]][0] == "schema_violation" and "at /name" in dead[placed[0][1]][1]
        assert dead[placed[2][1]][0] == "schema_violation" and "at /tags" in dead[placed[2][1]][1]
        after = await broker.aproduce([message(message={"text": "after"})])
        assert after
        await eventually(lambda: "after" in receiver.texts("tricky"), timeout=5, message="the next message delivered")
        assert matcher.matcher.consumer.counters.dead_lettered == 2


def value_of(document) -> struct_pb2.Value:
    value = struct_pb2.Value()
    json_format.ParseDict(document, value)
    return value


async def test_publish_refuses_a_message_breaking_its_schema_naming_the_pointer(broker, registry, sender, receiver):
    await registry.register(schemas={EVENT_TYPE: ORDER})
    endpoint = await registry.endpoint(receiver.url("published"))
    await registry.filter([endpoint.id], applications=[APP])

    async with running_matcher(broker, registry.target, sender.target, wait_assigned=False) as server:
        async with channel(f"127.0.0.1:{server.port}") as ch:
            stub = matcher_pb2_grpc.MatcherServiceStub(ch)

            async def publish(document, **fields):
                request = matcher_pb2.PublishMessageRequest(
                    application=APP, event_type=EVENT_TYPE, level=LEVEL, message=value_of(document), **fields
                )
                return await stub.PublishMessage(request, metadata=identity_metadata(ACCOUNT))

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await publish({"text": "bad-price", "items": [{"price": "3"}]})
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            violations = dict(field_violations_of(caught.value))
            assert list(violations) == ["message/items/0/price"], violations
            assert 'is not of type "number"' in violations["message/items/0/price"]

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await publish({"text": "no-items"})
            assert dict(field_violations_of(caught.value)) == {
                "message": f"field 'message' as a whole breaks the schema of {APP}/{EVENT_TYPE}: \"items\" is a required property"
            }

            accepted = await publish({"text": "conforming", "items": [{"price": 3}]}, id="conforming-1")
            assert accepted.id == "conforming-1"
            await eventually(
                lambda: receiver.texts("published") == ["conforming"], message="the conforming one delivered"
            )
    # Nothing refused reached the topic, so nothing was dead-lettered either.
    records = await broker.aread(broker.outbox, 10, timeout=2.0)
    assert len(records) == 1


def test_pointers_escape_slashes_and_tildes():
    assert json_pointer([]) == ""
    assert json_pointer(["items", 0, "price"]) == "/items/0/price"
    assert json_pointer(["a/b", "~c"]) == "/a~1b/~0c"
