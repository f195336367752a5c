"""MatcherService: PublishMessage puts a validated event on the outbox (and the matcher delivers it);
MatchMessage is a dry run of the caller's routes; both need an identity and registered names. Health
and reflection are served like every hooks server."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import pytest
import pytest_asyncio
from google.protobuf import struct_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from hooks.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from services.common.broker import ensure_topics
from services.common.channels import channel
from services.common.errors import field_violations_of
from services.common.identity import identity_metadata
from services.common.limits import MAX_DEPTH
from tests.helpers.matcher import (
    ACCOUNT,
    APP,
    EVENT_TYPE,
    LEVEL,
    PLAIN_TYPE,
    Kafka,
    Receiver,
    Registry,
    Sender,
    receiving,
    running_matcher,
)
from tests.helpers.waiting import eventually

OTHER = "000777"


@dataclass
class Api:
    server: object
    stub: matcher_pb2_grpc.MatcherServiceStub
    channel: grpc.aio.Channel
    broker: Kafka
    registry: Registry
    receiver: Receiver


@pytest_asyncio.fixture(scope="module")
async def api(kafka, tmp_path_factory):
    """One bench for the module (tests use accounts of their own): registry, sender, receiver, and a
    running matcher with a stub on its port."""
    suffix = uuid.uuid4().hex[:8]
    broker = Kafka(kafka.bootstrap_servers, f"hooks.outbox.api.{suffix}", f"hooks.outbox.dlq.api.{suffix}")
    await asyncio.to_thread(ensure_topics, {"bootstrap.servers": broker.bootstrap}, [broker.outbox, broker.dlq], 2)
    folder = tmp_path_factory.mktemp("matcher-api")
    registry = Registry(f"sqlite:///{folder / 'registry.db'}")
    await registry.start()
    await registry.register()
    sender = Sender(f"sqlite:///{folder / 'sender.db'}", registry.target, broker.settings())
    await sender.start()
    try:
        async with receiving() as receiver:
            async with running_matcher(broker, registry.target, sender.target, wait_assigned=False) as server:
                async with channel(f"127.0.0.1:{server.port}") as ch:
                    yield Api(server, matcher_pb2_grpc.MatcherServiceStub(ch), ch, broker, registry, receiver)
    finally:
        await sender.stop()
        await registry.close()


def new_account() -> str:
    return uuid.uuid4().hex[:12]


def text_value(text: str) -> struct_pb2.Value:
    value = struct_pb2.Value()
    value.struct_value.update({"text": text})
    return value


def publish_request(**fields) -> matcher_pb2.PublishMessageRequest:
    fields.setdefault("application", APP)
    fields.setdefault("event_type", EVENT_TYPE)
    fields.setdefault("level", LEVEL)
    if "message" not in fields:
        fields["message"] = text_value("published")
    elif fields["message"] is None:
        del fields["message"]
    return matcher_pb2.PublishMessageRequest(**fields)


async def invalid(call) -> dict[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    return dict(field_violations_of(caught.value))


async def test_publish_puts_the_event_on_the_outbox_and_it_is_delivered(api):
    account = new_account()
    endpoint = await api.registry.endpoint(api.receiver.url("published"), account=account)
    await api.registry.filter([endpoint.id], account=account)
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(datetime(2026, 11, 27, 9, 30, 15, 250000, tzinfo=UTC))

    response = await api.stub.PublishMessage(
        publish_request(message=text_value("hello"), timestamp=when, id="my-id"), metadata=identity_metadata(account)
    )
    assert (response.id, response.topic) == ("my-id", api.broker.outbox)
    generated = await api.stub.PublishMessage(
        publish_request(event_type=PLAIN_TYPE, level="", message=text_value("second")),
        metadata=identity_metadata(account),
    )
    assert len(generated.id) == 36  # a uuid4

    records = await api.broker.aread(api.broker.outbox, 100, timeout=2.0)
    by_offset = {(r.partition(), r.offset()): json.loads(r.value()) for r in records}
    first = by_offset[(response.partition, response.offset)]
    assert first == {
        "id": "my-id",
        "application": APP,
        "event_type": EVENT_TYPE,
        "level": LEVEL,
        "account_id": account,  # from the caller's identity
        "timestamp": "2026-11-27T09:30:15.250000Z",
        "message": {"text": "hello"},
    }
    second = by_offset[(generated.partition, generated.offset)]
    assert second["id"] == generated.id and second["level"] == "" and second["account_id"] == account
    assert datetime.fromisoformat(second["timestamp"].replace("Z", "+00:00")).tzinfo is not None

    await eventually(lambda: sorted(api.receiver.texts("published")) == ["hello", "second"], message="both delivered")


async def test_publish_rejects_bad_input_naming_the_field(api):
    account = new_account()
    me = identity_metadata(account)
    publish = api.stub.PublishMessage
    assert "application" in await invalid(publish(publish_request(application=""), metadata=me))
    assert "event_type" in await invalid(publish(publish_request(event_type="x" * 300), metadata=me))
    assert "message" in await invalid(publish(publish_request(message=None), metadata=me))
    assert "id" in await invalid(publish(publish_request(id="i" * 201), metadata=me))
    big = text_value("x" * (300 * 1024))
    assert "message" in await invalid(publish(publish_request(message=big), metadata=me))
    # Names the registry does not know.
    assert "application" in await invalid(publish(publish_request(application="nope"), metadata=me))
    assert "event_type" in await invalid(publish(publish_request(event_type="nope"), metadata=me))
    assert "level" in await invalid(publish(publish_request(level="nope"), metadata=me))
    assert "level" in await invalid(publish(publish_request(level=""), metadata=me))
    assert "level" in await invalid(publish(publish_request(event_type=PLAIN_TYPE), metadata=me))
    # Nothing of it reached the topic.
    records = await api.broker.aread(api.broker.outbox, 100, timeout=2.0)
    assert [r for r in records if json.loads(r.value())["account_id"] == account] == []


def nested_value(depth: int) -> struct_pb2.Value:
    """A Value of lists nested `depth` deep around a string (protobuf parses it: under its 100 levels)."""
    root = struct_pb2.Value()
    value = root
    for _ in range(depth):
        value = value.list_value.values.add()
    value.string_value = "deep"
    return root


@pytest.mark.parametrize(
    "value, named",
    [
        (struct_pb2.Value(number_value=float("nan")), "finite"),
        (struct_pb2.Value(number_value=float("inf")), "finite"),
        (
            struct_pb2.Value(list_value=struct_pb2.ListValue(values=[struct_pb2.Value(number_value=-float("inf"))])),
            "finite",
        ),
        (nested_value(MAX_DEPTH + 1), "deeper"),
        (nested_value(49), "deeper"),
    ],
)
async def test_publish_refuses_a_message_beyond_the_limits(api, value, named):
    """NaN and Infinity used to crash the call (UNKNOWN), and 49 levels went on the topic to break a
    sender stream: what the consumer would dead-letter is refused here, naming the field."""
    account = new_account()
    violations = await invalid(
        api.stub.PublishMessage(publish_request(message=value), metadata=identity_metadata(account))
    )
    assert named in violations["message"]
    records = await api.broker.aread(api.broker.outbox, 100, timeout=1.0)
    assert [r for r in records if json.loads(r.value())["account_id"] == account] == []


@pytest.mark.parametrize("field", ["application", "event_type", "level", "id"])
@pytest.mark.parametrize("character", ["\x00", "\x1b", "\x7f", "\x85"])
async def test_publish_refuses_control_characters_in_names_and_ids(api, field, character):
    violations = await invalid(
        api.stub.PublishMessage(publish_request(**{field: f"a{character}b"}), metadata=identity_metadata(new_account()))
    )
    assert "control character" in violations[field]


async def test_publish_accepts_a_message_at_the_limit(api):
    account = new_account()
    response = await api.stub.PublishMessage(
        publish_request(message=nested_value(MAX_DEPTH), id="deep-enough"), metadata=identity_metadata(account)
    )
    assert response.id == "deep-enough"


async def test_match_is_a_dry_run_of_the_callers_routes(api):
    account, other = new_account(), new_account()
    mine = await api.registry.endpoint(api.receiver.url("mine"), account=account)
    everything = await api.registry.filter([mine.id], account=account)
    only_plain = await api.registry.filter([mine.id], account=account, event_types=[(APP, PLAIN_TYPE)])
    theirs = await api.registry.endpoint(api.receiver.url("theirs"), account=other)
    await api.registry.filter([theirs.id], account=other)

    response = await api.stub.MatchMessage(
        matcher_pb2.MatchMessageRequest(application=APP, event_type=EVENT_TYPE, level=LEVEL),
        metadata=identity_metadata(account),
    )
    assert [(r.endpoint.id, list(r.filter_ids)) for r in response.routes] == [(mine.id, [everything.id])]
    assert not response.routes[0].endpoint.secret

    response = await api.stub.MatchMessage(
        matcher_pb2.MatchMessageRequest(application=APP, event_type=PLAIN_TYPE), metadata=identity_metadata(account)
    )
    assert sorted(response.routes[0].filter_ids) == sorted([everything.id, only_plain.id])

    response = await api.stub.MatchMessage(
        matcher_pb2.MatchMessageRequest(application=APP, event_type=PLAIN_TYPE),
        metadata=identity_metadata(new_account()),
    )
    assert list(response.routes) == []  # an account without filters
    assert api.receiver.on("mine") == [] and api.receiver.on("theirs") == []  # a dry run delivers nothing


async def test_match_rejects_unknown_names_naming_the_field(api):
    me = identity_metadata(new_account())

    def match(**fields):
        return api.stub.MatchMessage(matcher_pb2.MatchMessageRequest(**fields), metadata=me)

    assert "application" in await invalid(match(application="nope", event_type=EVENT_TYPE, level=LEVEL))
    assert "event_type" in await invalid(match(application=APP, event_type="nope", level=LEVEL))
    assert "level" in await invalid(match(application=APP, event_type=EVENT_TYPE, level="nope"))
    assert "application" in await invalid(match(event_type=EVENT_TYPE))
    assert "event_type" in await invalid(match(application=APP))


@pytest.mark.parametrize("metadata", [(), (("x-rh-identity", "not base64!"),), (("x-rh-identity", "e30="),)])
async def test_both_calls_need_an_identity(api, metadata):
    for call in (
        api.stub.PublishMessage(publish_request(), metadata=metadata),
        api.stub.MatchMessage(
            matcher_pb2.MatchMessageRequest(application=APP, event_type=EVENT_TYPE), metadata=metadata
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_registry_down_makes_both_calls_unavailable(broker, registry, sender):
    await registry.stop()
    async with running_matcher(broker, registry.target, sender.target, wait_assigned=False) as server:
        async with channel(f"127.0.0.1:{server.port}") as ch:
            stub = matcher_pb2_grpc.MatcherServiceStub(ch)
            for call in (
                stub.PublishMessage(publish_request(), metadata=identity_metadata(ACCOUNT), timeout=20),
                stub.MatchMessage(
                    matcher_pb2.MatchMessageRequest(application=APP, event_type=EVENT_TYPE, level=LEVEL),
                    metadata=identity_metadata(ACCOUNT),
                    timeout=20,
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await broker.aread(broker.outbox, 1, timeout=1.0) == []


async def test_health_and_reflection(api):
    ch = api.channel
    health = health_pb2_grpc.HealthStub(ch)
    for service in ("", "hooks.matcher.v1.MatcherService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING

    reflection = reflection_pb2_grpc.ServerReflectionStub(ch)
    call = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = set()
    async for answer in call:
        names |= {s.name for s in answer.list_services_response.service}
    assert {"hooks.matcher.v1.MatcherService", "grpc.health.v1.Health"} <= names
