"""No input can stop the pipeline (issue 8): hostile messages through each entry, with good ones
around them, on SQLite and PostgreSQL, against the whole stack running in this process.

- Kafka (a plain confluent-kafka Producer onto the outbox topic): every record ends delivered or
  dead-lettered with a reason of the closed set, the one its content calls for.
- PublishMessage over gRPC, and the gateway's POST /api/hooks/v1/messages: every call answers OK /
  200 or INVALID_ARGUMENT / 400 (UNAUTHENTICATED / 401 for an unreadable identity), never UNKNOWN,
  INTERNAL or 500, never a Python name; what is accepted is delivered.
- Throughout, the good tenant's messages are delivered within a couple of seconds of being sent;
  after each example nothing is left in flight; at the end the pipeline still delivers promptly.

See tests/fuzz/bench.py for the property, cases.py and strategies.py for what is generated and
oracle.py for what each input must become. The explicit examples are the findings of issue 8, run every time.
"""

from __future__ import annotations

import json
import time
import uuid

import grpc
from hypothesis import example, given

from hooks.matcher.v1 import matcher_pb2
from services.common.identity import IDENTITY_HEADER, encode_identity, identity_metadata
from services.common.limits import MAX_DEPTH, MAX_MESSAGE_BYTES
from tests.fuzz.bench import HOSTILE_PATH, Bench, Sent, judge_answer
from tests.fuzz.cases import (
    Burst,
    Call,
    CallBatch,
    Drop,
    Fresh,
    Identity,
    KafkaBatch,
    Nested,
    Post,
    PostBatch,
    Put,
    Record,
    Splice,
    TwinCalls,
    TwinPosts,
    Twins,
    to_value,
)
from tests.fuzz.oracle import Expectation, delivered_id, expect_call, expect_post, expect_record
from tests.fuzz.profiles import fuzz_settings, fuzzing, rounds
from tests.fuzz.strategies import call_batches, kafka_batches, post_batches

MESSAGES_PATH = "/api/hooks/v1/messages"


def with_examples(*batches):
    """Hypothesis's @example for each batch (argument `batch`)."""

    def decorate(test):
        for batch in reversed(batches):
            test = example(batch=batch)(test)
        return test

    return decorate


# -- Kafka -----------------------------------------------------------------------------------------


async def kafka_good(bench: Bench) -> Sent:
    raw, item = bench.good_record()
    [(partition, offset, at)] = await bench.stack.produce([raw])
    item.origin, item.sent_at = (partition, offset), at
    return item


async def kafka_example(bench: Bench, batch: KafkaBatch) -> None:
    """Produces the batch (a good record before each case and after the last) and checks the property."""
    records: list[bytes | None] = []
    sent: list[Sent] = []

    def add_good() -> None:
        raw, item = bench.good_record()
        records.append(raw)
        sent.append(item)

    for case in batch.cases:
        add_good()
        for raw in case.render(bench.tenants):
            expectation = expect_record(raw, bench.tenants.hostile)
            label = f"record {case!r}" + (f" = {raw[:100]!r}…" if raw and len(raw) > 100 else f" = {raw!r}")
            records.append(raw)
            sent.append(
                Sent(label, HOSTILE_PATH, expectation, bench.tenants.hostile, 0.0, raw=raw,
                     record_key=batch.key, record_headers=batch.headers)
            )  # fmt: skip
    add_good()
    placed = await bench.stack.produce(
        records, partition=batch.partition, key=batch.key, headers=list(batch.headers) or None
    )
    for item, (partition, offset, at) in zip(sent, placed, strict=True):
        item.origin, item.sent_at = (partition, offset), at
        document = item.expectation.document
        if isinstance(document, dict) and isinstance(document.get("application"), str):
            item.key = (document["application"], delivered_id(document, bench.stack.kafka.topic, partition, offset))
    await bench.verify(sent, batch, kafka_good)


KAFKA_FINDINGS = (
    KafkaBatch(0, (Record((Splice("message", Nested(49, "list")),)),)),  # 1: broke sender streams
    KafkaBatch(1, (Record((Splice("message", Nested(46, "object")),)),)),
    KafkaBatch(0, (Record((Splice("message", Nested(MAX_DEPTH, "mixed")),)),)),  # at the limit: delivered
    KafkaBatch(0, (Record((Put("message", {"x": float("nan")}),)),)),  # 2: what Python's json writes
    KafkaBatch(1, (Record((Splice("message", "1e999"),)),)),
    KafkaBatch(0, (Record((Put("account_id", "acct\x00"),)),)),  # 3: NUL never settled
    KafkaBatch(0, (Record((Put("event_type", "hit\x00"),)), Record((Put("level", "low\x00"),)))),
    KafkaBatch(1, (Record((Put("id", Fresh(suffix="\x00")),)),)),
    KafkaBatch(0, (Twins("hit"),)),  # 6: one id from two applications
    KafkaBatch(1, (Record(size=MAX_MESSAGE_BYTES), Record(size=MAX_MESSAGE_BYTES + 1))),
    KafkaBatch(0, (Burst(20, 230_000),)),  # 5: batches and pages bounded by count, not bytes
    # A producer's key and headers are any bytes: kept on the dead letter, never a reason to stop.
    KafkaBatch(1, (Record((Put("level", "nope"),)),), key=b"\xff\x00", headers=(("\x01", b"\xff"), ("", b""))),
)


def test_every_kafka_record_ends_delivered_or_dead_lettered(database_url, kafka, topics):
    bench = Bench(database_url, kafka.bootstrap_servers, topics)

    @fuzz_settings()
    @given(batch=kafka_batches())
    @with_examples(*KAFKA_FINDINGS)
    def every_record_settles(batch: KafkaBatch) -> None:
        bench.run(kafka_example, batch)

    try:
        with fuzzing():
            for _ in rounds():
                every_record_settles()
        bench.run(Bench.finish, kafka_good)
    finally:
        bench.close()


# -- PublishMessage over gRPC ----------------------------------------------------------------------


async def publish_good(bench: Bench) -> Sent:
    document, item = bench.good_event()
    message = to_value(document.pop("message"))
    item.sent_at = time.monotonic()
    try:
        response = await bench.stack.publish(
            matcher_pb2.PublishMessageRequest(message=message, **document), identity_metadata(bench.tenants.good)
        )
    except grpc.aio.AioRpcError as error:
        raise AssertionError(f"a good PublishMessage was refused: {error.code().name} {error.details()!r}") from None
    item.origin = (response.partition, response.offset)
    return item


async def publish_hostile(bench: Bench, call: Call) -> list[Sent]:
    token = uuid.uuid4().hex
    request, message = call.request(token)
    fields = {name: getattr(request, name) for name in ("application", "event_type", "level", "id")}
    expectation = expect_call(
        fields, message, not call.unset_message, dict(call.fields).get("timestamp"), call.identity is None
    )
    metadata = call.identity.metadata() if call.identity else identity_metadata(bench.tenants.hostile)
    label = f"PublishMessage {call!r}"
    sent_at = time.monotonic()
    try:
        response = await bench.stack.publish(request, metadata)
        code, details = "OK", ""
    except grpc.aio.AioRpcError as error:
        response, code, details = None, error.code().name, error.details() or ""
    judge_answer(label, code, details, expectation, "OK")
    if response is None:
        return []
    accepted = Expectation(True, document=expectation.document)
    key = (request.application, response.id)
    return [
        Sent(label, HOSTILE_PATH, accepted, bench.tenants.hostile, sent_at, key, (response.partition, response.offset))
    ]


async def publish_example(bench: Bench, batch: CallBatch) -> None:
    sent: list[Sent] = []
    for case in batch.cases:
        sent.append(await publish_good(bench))
        if isinstance(case, TwinCalls):
            shared = uuid.uuid4().hex
            calls = [Call((("application", application), ("id", shared))) for application in ("fuzz", "twin")]
        else:
            calls = [case]
        for call in calls:
            sent += await publish_hostile(bench, call)
    sent.append(await publish_good(bench))
    await bench.verify(sent, batch, publish_good)


PUBLISH_FINDINGS = (
    CallBatch((Call((("message", Nested(49, "list")),)),)),  # 1
    CallBatch((Call((("message", Nested(MAX_DEPTH, "object")),)),)),  # at the limit: accepted
    # Past it: objects take three protobuf levels each, so at 34 the request itself exceeds the 100
    # levels protobuf parses; the answer must still be INVALID_ARGUMENT (found by this suite).
    CallBatch((Call((("message", Nested(MAX_DEPTH + 2, "object")),)),)),
    CallBatch((Call((("message", {"x": float("nan")}),)),)),  # 2
    CallBatch((Call((("event_type", "hit\x00"),)), Call((("id", Fresh(suffix="\x00")),)))),  # 3
    CallBatch((TwinCalls(),)),  # 6
    CallBatch((Call(identity=Identity("deep")),)),  # 9: RecursionError, UNKNOWN
)


def test_publish_message_answers_ok_or_invalid_argument_and_delivers_what_it_accepts(database_url, kafka, topics):
    bench = Bench(database_url, kafka.bootstrap_servers, topics)

    @fuzz_settings()
    @given(batch=call_batches())
    @with_examples(*PUBLISH_FINDINGS)
    def every_call_is_answered_and_kept(batch: CallBatch) -> None:
        bench.run(publish_example, batch)

    try:
        with fuzzing():
            for _ in rounds():
                every_call_is_answered_and_kept()
        bench.run(Bench.finish, publish_good)
    finally:
        bench.close()


# -- the gateway -----------------------------------------------------------------------------------


async def gateway_post(bench: Bench, body: bytes, headers: dict[str, str]) -> tuple[str, str, dict | None]:
    """(HTTP status, body text, body JSON or None) of a POST /api/hooks/v1/messages."""
    response = await bench.stack.http.post(
        MESSAGES_PATH, content=body, headers={"content-type": "application/json", **headers}
    )
    try:
        document = response.json()
    except ValueError:
        document = None
    return str(response.status_code), response.text, document if isinstance(document, dict) else None


async def gateway_good(bench: Bench) -> Sent:
    document, item = bench.good_event()
    item.sent_at = time.monotonic()
    status, text, answer = await gateway_post(
        bench, json.dumps(document).encode(), {IDENTITY_HEADER: encode_identity(bench.tenants.good)}
    )
    assert status == "200" and answer, f"a good POST {MESSAGES_PATH} was refused: {status} {text[:300]!r}"
    item.origin = (int(answer["partition"]), int(answer["offset"]))
    return item


async def gateway_hostile(bench: Bench, post: Post) -> list[Sent]:
    body = post.body(uuid.uuid4().hex)
    expectation = expect_post(body, post.identity is None)
    if post.identity is None:
        headers = {IDENTITY_HEADER: encode_identity(bench.tenants.hostile)}
    else:
        headers = dict(post.identity.metadata())
    label = f"POST {post!r}" + (f" = {body[:100]!r}…" if len(body) > 100 else f" = {body!r}")
    sent_at = time.monotonic()
    status, text, answer = await gateway_post(bench, body, headers)
    judge_answer(label, status, text, expectation, "200")
    if status != "200":
        assert answer is not None and "message" in answer, (
            f"{label}: answered {status} with {text[:200]!r}, not a status"
        )
        return []
    assert answer is not None and answer.get("id"), f"{label}: answered 200 with {text[:200]!r}"
    key = (expectation.document["application"], answer["id"])
    origin = (int(answer["partition"]), int(answer["offset"]))
    accepted = Expectation(True, document=expectation.document)
    return [Sent(label, HOSTILE_PATH, accepted, bench.tenants.hostile, sent_at, key, origin)]


async def gateway_example(bench: Bench, batch: PostBatch) -> None:
    sent: list[Sent] = []
    for case in batch.cases:
        sent.append(await gateway_good(bench))
        if isinstance(case, TwinPosts):
            shared = uuid.uuid4().hex
            posts = [Post((Put("application", application), Put("id", shared))) for application in ("fuzz", "twin")]
        else:
            posts = [case]
        for post in posts:
            sent += await gateway_hostile(bench, post)
    sent.append(await gateway_good(bench))
    await bench.verify(sent, batch, gateway_good)


GATEWAY_FINDINGS = (
    PostBatch((Post((Splice("message", Nested(49, "list")),)),)),  # 1: "any tenant can send it"
    PostBatch((Post((Splice("message", Nested(MAX_DEPTH, "list")),)),)),  # at the limit: accepted
    PostBatch((Post((Splice("message", "NaN"),)), Post((Splice("message", "1e999"),)))),  # 2
    PostBatch((Post((Put("level", "low\x00"),)), Post((Put("id", Fresh(suffix="\x00")),)))),  # 3
    PostBatch((TwinPosts(),)),  # 6
    PostBatch((Post(identity=Identity("deep")), Post(raw=b"[" * 5000))),  # 9
    PostBatch((Post((Drop("message"), Put("extra", 1))),)),
    PostBatch((Post((Put("id", None),)), Post((Put("level", None),)))),  # a null: refused (the document has none)
)


def test_gateway_post_messages_answers_200_or_400_and_delivers_what_it_accepts(database_url, kafka, topics):
    bench = Bench(database_url, kafka.bootstrap_servers, topics)

    @fuzz_settings()
    @given(batch=post_batches())
    @with_examples(*GATEWAY_FINDINGS)
    def every_post_is_answered_and_kept(batch: PostBatch) -> None:
        bench.run(gateway_example, batch)

    try:
        with fuzzing():
            for _ in rounds():
                every_post_is_answered_and_kept()
        bench.run(Bench.finish, gateway_good)
    finally:
        bench.close()
