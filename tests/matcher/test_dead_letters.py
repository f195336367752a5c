"""Bad messages go to the dead-letter topic, untouched, with where they came from and why in headers;
the consumer carries on with the next message, and the group's offsets reach the end."""

from __future__ import annotations

import json

from tests.helpers.matcher import ACCOUNT, APP, EVENT_TYPE, PLAIN_TYPE, group_of, message, running_matcher, without
from tests.helpers.waiting import eventually

MAX_BYTES = 4096

# (raw record, reason header, text the message header must contain)
BAD = [
    (b"{not json", "invalid_json", "JSON"),
    (b"\xff\xfe\x00", "invalid_json", "JSON"),
    (None, "invalid_json", "tombstone"),
    (b"[1, 2, 3]", "not_an_object", "object"),
    (without(message(), "account_id"), "missing_field", "'account_id'"),
    (without(message(), "timestamp"), "missing_field", "'timestamp'"),
    (without(message(), "message"), "missing_field", "'message'"),
    (message(application=42), "invalid_type", "'application'"),
    (message(level=None), "invalid_type", "'level'"),
    (message(id=["x"]), "invalid_type", "'id'"),
    (message(id="x" * 201), "invalid_value", "'id'"),
    (message(event_type=""), "invalid_value", "'event_type'"),
    (message(account_id="a" * 65), "invalid_value", "'account_id'"),
    (message(timestamp="last tuesday"), "invalid_timestamp", "'timestamp'"),
    (message(timestamp="2026-11-27T10:00:00"), "invalid_timestamp", "'timestamp'"),
    (message(message="x" * MAX_BYTES), "too_large", "bytes"),
    (message(application="nope"), "unknown_application", "'application'"),
    (message(event_type="nope"), "unknown_event_type", "'event_type'"),
    (message(level="nope"), "unknown_level", "'level'"),
    (message(level=""), "unknown_level", "'level'"),  # the event type has levels
    (message(event_type=PLAIN_TYPE, level="low"), "unknown_level", "'level'"),  # it has none
]


async def test_each_bad_message_is_dead_lettered_and_the_next_one_still_delivered(broker, registry, sender, receiver):
    endpoint = await registry.endpoint(receiver.url("all"))
    await registry.filter([endpoint.id], applications=[APP])

    records: list = []
    for index, (raw, _, _) in enumerate(BAD):
        records.append(raw)
        records.append(message(message={"text": f"valid-{index}"}))
    records.append(message(event_type=PLAIN_TYPE, level="", message={"text": "no-levels"}))
    placed = await broker.aproduce(records, partition=0, headers=[("origin", b"test")])
    extra = await broker.aproduce([message(message={"text": "other-partition"})], partition=1)

    async with running_matcher(broker, registry.target, sender.target, matcher_max_message_bytes=MAX_BYTES) as matcher:
        texts = [f"valid-{i}" for i in range(len(BAD))] + ["no-levels", "other-partition"]
        await eventually(lambda: set(texts) <= set(receiver.texts("all")), message="every valid message delivered")

        dead = await broker.aread(broker.dlq, len(BAD))
        assert len(dead) == len(BAD)
        by_offset = {int(dict(m.headers())["hooks.error.offset"]): m for m in dead}
        for index, (raw, reason, text) in enumerate(BAD):
            partition, offset = placed[2 * index]
            record = by_offset[offset]
            headers = dict(record.headers())
            expected_value = json.dumps(raw).encode() if isinstance(raw, dict) else raw
            assert record.value() == expected_value, reason  # the original bytes
            assert headers["hooks.error.topic"] == broker.outbox.encode()
            assert headers["hooks.error.partition"] == str(partition).encode()
            assert headers["hooks.error.reason"].decode() == reason, (index, headers)
            assert text in headers["hooks.error.message"].decode(), (reason, headers["hooks.error.message"])
            assert headers["origin"] == b"test"  # the record's own headers are kept

        # Every record is done: the group's committed offsets reach the end of both partitions.
        ends = [placed[-1][1] + 1, extra[-1][1] + 1]
        await eventually(lambda: broker.committed(group_of(matcher)) == ends, message=f"committed offsets reach {ends}")
        counters = matcher.matcher.consumer.counters
        assert counters.dead_lettered == len(BAD)
        assert counters.handed_off == len(BAD) + 2

    # Each valid message reached the receiver once, carrying its content and account.
    assert sorted(receiver.texts("all")) == sorted(texts)


async def test_message_identity_is_its_id_or_its_place(broker, registry, sender, receiver):
    """The sender's deliveries carry the producer's id, or topic/partition/offset when it gave none."""
    from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
    from services.common.channels import channel
    from services.common.identity import identity_metadata

    endpoint = await registry.endpoint(receiver.url("ids"))
    await registry.filter([endpoint.id], applications=[APP])
    placed = await broker.aproduce(
        [message(id="producer-id-1", message={"text": "a"}), message(message={"text": "b"})], partition=1
    )
    async with running_matcher(broker, registry.target, sender.target):
        await eventually(lambda: len(receiver.on("ids")) == 2, message="both delivered")
    async with channel(sender.target) as ch:
        stub = deliveries_pb2_grpc.DeliveryServiceStub(ch)
        listed = await stub.ListDeliveries(deliveries_pb2.ListDeliveriesRequest(), metadata=identity_metadata(ACCOUNT))
    ids = {d.event.id for d in listed.deliveries}
    assert ids == {"producer-id-1", f"{broker.outbox}/1/{placed[1][1]}"}
    assert all(d.event.application == APP and d.event.event_type == EVENT_TYPE for d in listed.deliveries)
