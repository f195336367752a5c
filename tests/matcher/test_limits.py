"""Hostile messages on the outbox: what breaks a limit is dead-lettered with its reason and the pipeline
carries on at full speed; large messages travel in batches bounded in bytes; a dead letter too large
for the producer is still produced, cut down, with its origin and reason."""

from __future__ import annotations

import json
import time

from services.common.limits import MAX_DEPTH
from tests.helpers.matcher import message, running_matcher
from tests.helpers.waiting import eventually

PROMPT = 2.0  # seconds within which a good message is delivered once produced


def nested(depth: int):
    value: object = {"text": "deep"}
    for index in range(depth - 1):
        value = [value] if index % 2 else {"k": value}
    return value


def raw_message(message_json: bytes) -> bytes:
    """A valid record whose `message` is the given JSON text, as written (NaN and 1e999 included)."""
    return json.dumps(message(message="MESSAGE")).encode().replace(b'"MESSAGE"', message_json)


async def test_a_message_beyond_the_limits_is_dead_lettered_and_the_pipeline_carries_on(
    broker, registry, sender, receiver
):
    """49 levels used to pass validation, break the sender stream it was written on and be retried for
    ever; NaN and 1e999 were accepted and crashed the sender's stream. Each is dead-lettered now, and
    every good message, before and after, is delivered promptly by the same streams."""
    endpoint = await registry.endpoint(receiver.url("limits"))
    await registry.filter([endpoint.id])
    hostile = [
        json.dumps(message(message=nested(49))).encode(),
        json.dumps(message(message=nested(MAX_DEPTH + 1))).encode(),
        raw_message(b'{"x": NaN}'),
        raw_message(b"[1, Infinity]"),
        raw_message(b'{"x": 1e999}'),
    ]
    records: list = []
    for index, record in enumerate(hostile):
        records += [record, message(message={"text": f"between-{index}"})]
    placed = await broker.aproduce(records, partition=0)

    async with running_matcher(broker, registry.target, sender.target) as matcher:
        consumer = matcher.matcher.consumer
        between = {f"between-{i}" for i in range(len(hostile))}
        await eventually(lambda: between <= set(receiver.texts("limits")), message="the good messages delivered")
        dead = await broker.aread(broker.dlq, len(hostile))
        assert sorted(int(dict(m.headers())["hooks.error.offset"]) for m in dead) == [p[1] for p in placed[::2]]
        for record in dead:
            headers = dict(record.headers())
            assert headers["hooks.error.reason"] == b"invalid_value", headers
            assert b"'message" in headers["hooks.error.message"]
        await eventually(lambda: consumer.in_flight == 0, message="nothing left in flight")

        # The pipeline is whole: every stream is up and each later message is delivered promptly.
        assert matcher.matcher.senders.connected == matcher.matcher.settings.matcher_sender_streams
        for index in range(4):
            text = f"after-{index}"
            produced = time.monotonic()
            await broker.aproduce([message(message={"text": text})], partition=index % 2)
            await eventually(
                lambda text=text: text in receiver.texts("limits"), timeout=PROMPT, message=f"{text} delivered promptly"
            )
            assert time.monotonic() - produced < PROMPT
        assert consumer.counters.dead_lettered == len(hostile)
        # A message leaves the matcher's count once the sender acknowledged it, which may come just
        # after its receipt: none may stay in flight.
        await eventually(lambda: consumer.in_flight == 0, message="nothing left in flight after")


async def test_a_burst_of_large_messages_is_sent_in_batches_bounded_in_bytes(broker, registry, sender, receiver):
    """256 requests of 20 KB in one DeliverBatchRequest exceeded gRPC's 4 MiB and broke the stream, for
    ever; now each batch stays within MAX_BATCH_BYTES and every message is delivered."""
    endpoint = await registry.endpoint(receiver.url("large"))
    await registry.filter([endpoint.id])
    texts = [f"large-{i}" for i in range(256)]
    padding = "x" * 20_000
    await broker.aproduce([message(message={"text": t, "padding": padding}) for t in texts], partition=0)

    async with running_matcher(broker, registry.target, sender.target, matcher_sender_streams=1) as matcher:
        await eventually(lambda: set(texts) <= set(receiver.texts("large")), timeout=60, message="all delivered")
        consumer = matcher.matcher.consumer
        assert consumer.counters.handed_off == len(texts)
        assert consumer.counters.dead_lettered == 0


async def test_a_dead_letter_too_large_to_produce_is_produced_cut_down(broker, registry, sender, receiver):
    """A record just under the producer's limit (librdkafka's message.max.bytes, 1,000,000 bytes, like
    a broker's default) is too large for the matcher; its dead letter, with the error headers, is
    larger than the limit. It used to be retried for ever; now it is produced with its value cut, and
    says so."""
    endpoint = await registry.endpoint(receiver.url("after-large"))
    await registry.filter([endpoint.id])
    value = b"{" + b" " * 999_898 + b"}"  # 999,900 bytes: with its header, under the limit by some 60
    placed = await broker.aproduce(
        [value, message(message={"text": "next"})], partition=0, headers=[("origin", b"app")]
    )

    async with running_matcher(broker, registry.target, sender.target) as matcher:
        await eventually(lambda: "next" in receiver.texts("after-large"), message="the next message delivered")
        (dead,) = await broker.aread(broker.dlq, 1)
        headers = dict(dead.headers())
        assert headers["hooks.error.reason"] == b"too_large"
        assert headers["hooks.error.topic"] == broker.outbox.encode()
        assert headers["hooks.error.offset"] == str(placed[0][1]).encode()
        assert b"999900 bytes" in headers["hooks.error.message"]
        assert headers["origin"] == b"app"  # the record's own headers fit, so they are kept
        assert headers["hooks.error.truncated"] == b"true"
        assert headers["hooks.error.original.bytes"] == str(len(value)).encode()
        assert 900_000 < len(dead.value()) < len(value) and value.startswith(dead.value())
        await eventually(lambda: matcher.matcher.consumer.in_flight == 0, message="nothing left in flight")
        assert matcher.matcher.consumer.counters.dead_lettered == 1


async def test_a_dead_letter_too_large_with_a_null_header_is_produced_cut_down(broker, registry, sender, receiver):
    """Kafka lets a header be null (confluent-kafka reads it as None). Cutting the dead letter of such
    a record down measured the header with len(None): the TypeError escaped the dead-lettering, the
    message was never done and its partition's offset stayed where it was. Now the null header is
    measured as empty and kept, null, in the dead letter cut down."""
    endpoint = await registry.endpoint(receiver.url("after-null-header"))
    await registry.filter([endpoint.id])
    value = b"{" + b" " * 999_898 + b"}"  # as above: its dead letter is larger than the producer's limit
    placed = await broker.aproduce(
        [value, message(message={"text": "next"})], partition=0, headers=[("origin", b"app"), ("empty", None)]
    )

    async with running_matcher(broker, registry.target, sender.target) as matcher:
        await eventually(lambda: "next" in receiver.texts("after-null-header"), message="the next message delivered")
        (dead,) = await broker.aread(broker.dlq, 1)
        headers = dict(dead.headers())
        assert headers["hooks.error.reason"] == b"too_large"
        assert headers["hooks.error.offset"] == str(placed[0][1]).encode()
        assert headers["origin"] == b"app"
        assert "empty" in headers and headers["empty"] is None
        assert headers["hooks.error.truncated"] == b"true"
        await eventually(lambda: matcher.matcher.consumer.in_flight == 0, message="nothing left in flight")
        assert matcher.matcher.consumer.counters.dead_lettered == 1


async def test_a_dead_letter_whose_key_alone_fills_the_limit_is_produced_without_it(broker, registry, sender, receiver):
    """A record's key is the producer's to choose: one of 999,890 bytes with a value that is not JSON
    fits the broker, but not with the error headers beside it, and there is no value or header left to
    cut. It was retried for ever (its partition's offset pinned); now the key goes too, and the dead
    letter says so."""
    endpoint = await registry.endpoint(receiver.url("after-key"))
    await registry.filter([endpoint.id])
    key = b"k" * 999_890
    placed = await broker.aproduce([b"not json"], partition=0, key=key)
    await broker.aproduce([message(message={"text": "next"})], partition=0)

    async with running_matcher(broker, registry.target, sender.target) as matcher:
        await eventually(lambda: "next" in receiver.texts("after-key"), message="the next message delivered")
        (dead,) = await broker.aread(broker.dlq, 1)
        headers = dict(dead.headers())
        assert headers["hooks.error.reason"] == b"invalid_json"
        assert headers["hooks.error.offset"] == str(placed[0][1]).encode()
        assert headers["hooks.error.truncated"] == b"true"
        assert headers["hooks.error.original.key.bytes"] == str(len(key)).encode()
        assert dead.key() is None
        await eventually(lambda: matcher.matcher.consumer.in_flight == 0, message="nothing left in flight")
        assert matcher.matcher.consumer.counters.dead_lettered == 1


async def test_a_message_too_large_for_one_grpc_message_is_dead_lettered_as_too_large(
    broker, registry, sender, receiver
):
    """Within the matcher's byte limit for records, but larger than its gRPC limit once it is an event:
    it cannot be sent at all, so it is dead-lettered alone; the stream and the next message go on."""
    endpoint = await registry.endpoint(receiver.url("grpc-limit"))
    await registry.filter([endpoint.id])
    placed = await broker.aproduce(
        [message(message={"text": "big", "padding": "x" * 100_000}), message(message={"text": "small"})], partition=0
    )
    async with running_matcher(broker, registry.target, sender.target, grpc_max_message_bytes=64 * 1024) as matcher:
        await eventually(lambda: "small" in receiver.texts("grpc-limit"), message="the next message delivered")
        (dead,) = await broker.aread(broker.dlq, 1)
        headers = dict(dead.headers())
        assert headers["hooks.error.reason"] == b"too_large"
        assert headers["hooks.error.offset"] == str(placed[0][1]).encode()
        assert b"larger than one gRPC message" in headers["hooks.error.message"]
        assert matcher.matcher.consumer.counters.dead_lettered == 1
