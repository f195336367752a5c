"""The matcher's test bench: the real broker (topics per test), the real registry and sender in-process
on port 0, HTTP receivers on loopback (aiohttp), and the matcher itself on port 0 over real channels.
The fixtures that start them are in tests/matcher/conftest.py.

Kafka helpers produce records and report where they landed, read a topic back, and read a group's
committed offsets the way an operator would (a Consumer's `committed()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from aiohttp import web
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from hooks.registry.v1 import (
    applications_pb2,
    applications_pb2_grpc,
    endpoints_pb2,
    endpoints_pb2_grpc,
    filters_pb2,
    filters_pb2_grpc,
)
from services.common.broker import free_port
from services.common.channels import channel
from services.common.identity import identity_metadata
from services.common.settings import KafkaSettings
from services.matcher.server import MatcherServer, build_server
from services.matcher.settings import MatcherSettings
from services.registry.server import build_server as build_registry
from services.registry.settings import RegistrySettings
from services.sender.server import build_server as build_sender
from services.sender.settings import SenderSettings
from tests.helpers import http
from tests.helpers.groups import SESSION_TIMEOUT_MS

ACCOUNT = "000001"
APP = "policies"
EVENT_TYPE = "policy-triggered"
LEVEL = "critical"
PLAIN_TYPE = "policy-created"  # an event type without levels


def message(**overrides) -> dict:
    """A valid incoming message of ACCOUNT, with `overrides` (remove a field with `without`)."""
    document = {
        "application": APP,
        "event_type": EVENT_TYPE,
        "level": LEVEL,
        "message": {"text": "policy fired"},
        "timestamp": "2026-11-27T10:00:00Z",
        "account_id": ACCOUNT,
    }
    document.update(overrides)
    return document


def without(document: dict, name: str) -> dict:
    return {k: v for k, v in document.items() if k != name}


# -- Kafka ----------------------------------------------------------------------------------------


@dataclass
class Kafka:
    bootstrap: str
    outbox: str
    dlq: str

    def settings(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap, topic=self.outbox, dlq_topic=self.dlq)

    def produce(
        self, records: list[bytes | dict | None], partition: int = 0, headers=None, key: bytes | None = None
    ) -> list[tuple[int, int]]:
        """Produces the records in order to one partition (each with `key` and `headers`); returns
        (partition, offset) of each."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        placed: list[tuple[int, int] | None] = [None] * len(records)

        def report(index: int):
            def on_delivery(error, msg: Message) -> None:
                assert error is None, error
                placed[index] = (msg.partition(), msg.offset())

            return on_delivery

        for index, record in enumerate(records):
            value = json.dumps(record).encode() if isinstance(record, dict) else record
            producer.produce(
                self.outbox, value=value, key=key, partition=partition, headers=headers, on_delivery=report(index)
            )
        assert producer.flush(30) == 0
        return placed  # type: ignore[return-value]

    async def aproduce(self, records, partition: int = 0, headers=None, key=None) -> list[tuple[int, int]]:
        return await asyncio.to_thread(self.produce, records, partition, headers, key)

    def read(self, topic: str, count: int, timeout: float = 30.0) -> list[Message]:
        """The first `count` records of `topic` (all partitions), waiting up to `timeout`."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
            found: list[Message] = []
            deadline = time.monotonic() + timeout
            while len(found) < count and time.monotonic() < deadline:
                for msg in consumer.consume(count - len(found), 0.5):
                    if msg.error() is None:
                        found.append(msg)
            return found
        finally:
            consumer.close()

    async def aread(self, topic: str, count: int, timeout: float = 30.0) -> list[Message]:
        return await asyncio.to_thread(self.read, topic, count, timeout)

    def committed(self, group: str, partitions: int = 2) -> list[int]:
        """The group's committed offset of each outbox partition (-1001 when none)."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            found = consumer.committed([TopicPartition(self.outbox, p) for p in range(partitions)], timeout=10)
            return [tp.offset for tp in found]
        finally:
            consumer.close()

    async def acommitted(self, group: str, partitions: int = 2) -> list[int]:
        return await asyncio.to_thread(self.committed, group, partitions)


# -- HTTP receivers -------------------------------------------------------------------------------


@dataclass
class Receiver:
    """POST /<name> on loopback: recorded, answered 200."""

    port: int = 0
    received: list[tuple[str, dict, dict]] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def on(self, name: str) -> list[dict]:
        """The JSON bodies received on /<name>."""
        return [body for path, _, body in self.received if path == name]

    def texts(self, name: str) -> list[str]:
        """The `message.text` of each webhook received on /<name>."""
        return [_text_of(body) for body in self.on(name)]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append((request.match_info["name"], dict(request.headers), body))
        return web.Response(text="ok")


def _text_of(body: dict) -> str:
    """Finds the `text` of our test messages in a webhook body, whatever envelope the sender uses."""
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("text"), str):
                return item["text"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return ""


def receiving() -> contextlib.AbstractAsyncContextManager[Receiver]:
    """A Receiver serving on 127.0.0.1 (its `port` set) until the block ends."""
    return http.receiving(Receiver())


# -- registry -------------------------------------------------------------------------------------


@dataclass
class Registry:
    """The real registry on a fixed port (so a test can stop it and start it again on the same one)."""

    database_url: str
    port: int = field(default_factory=free_port)
    server: object = None
    channel: grpc.aio.Channel | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await build_registry(
            RegistrySettings(
                registry_database_url=self.database_url,
                registry_change_poll_seconds=0.05,
                shutdown_grace_seconds=0.5,
                sender_allowed_networks="127.0.0.0/8",  # the receivers' loopback, as the sender allows it
            )
        )
        await self.server.start(self.target)
        if self.channel is None:
            self.channel = channel(self.target)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0.2)
            self.server = None

    async def close(self) -> None:
        await self.stop()
        if self.channel is not None:
            await self.channel.close()

    async def register(
        self, name: str = APP, event_types=((EVENT_TYPE, ("low", LEVEL)), (PLAIN_TYPE, ())), schemas: dict | None = None
    ) -> None:
        """Registers (again) the application; `schemas`: event type id -> the JSON Schema of its messages."""
        app = applications_pb2.Application(name=name, title=name.title())
        for type_id, levels in event_types:
            event_type = app.event_types.add(
                id=type_id,
                title=type_id.title(),
                levels=[applications_pb2.Level(id=lv, title=lv.title()) for lv in levels],
            )
            if schemas and type_id in schemas:
                event_type.schema.update(schemas[type_id])
        stub = applications_pb2_grpc.ApplicationServiceStub(self.channel)
        await stub.RegisterApplication(applications_pb2.RegisterApplicationRequest(application=app))

    async def endpoint(self, url: str, account: str = ACCOUNT, enabled: bool = True) -> endpoints_pb2.Endpoint:
        stub = endpoints_pb2_grpc.EndpointServiceStub(self.channel)
        response = await stub.CreateEndpoint(
            endpoints_pb2.CreateEndpointRequest(
                endpoint=endpoints_pb2.Endpoint(
                    name=f"ep-{uuid.uuid4().hex[:6]}",
                    type=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK,
                    target=url,
                    enabled=enabled,
                )
            ),
            metadata=identity_metadata(account),
        )
        return response.endpoint

    async def set_endpoint_enabled(self, endpoint_id: str, enabled: bool, account: str = ACCOUNT) -> None:
        stub = endpoints_pb2_grpc.EndpointServiceStub(self.channel)
        await stub.UpdateEndpoint(
            endpoints_pb2.UpdateEndpointRequest(
                endpoint=endpoints_pb2.Endpoint(id=endpoint_id, enabled=enabled),
                update_mask={"paths": ["enabled"]},
            ),
            metadata=identity_metadata(account),
        )

    async def filter(self, endpoint_ids, account: str = ACCOUNT, **fields) -> filters_pb2.Filter:
        stub = filters_pb2_grpc.FilterServiceStub(self.channel)
        if "event_types" in fields:
            fields["event_types"] = [
                filters_pb2.EventTypeRef(application=a, event_type=e) for a, e in fields["event_types"]
            ]
        response = await stub.CreateFilter(
            filters_pb2.CreateFilterRequest(
                filter=filters_pb2.Filter(name="f", enabled=True, endpoint_ids=list(endpoint_ids), **fields)
            ),
            metadata=identity_metadata(account),
        )
        return response.filter

    async def delete_filter(self, filter_id: str, account: str = ACCOUNT) -> None:
        stub = filters_pb2_grpc.FilterServiceStub(self.channel)
        await stub.DeleteFilter(filters_pb2.DeleteFilterRequest(id=filter_id), metadata=identity_metadata(account))


# -- sender ---------------------------------------------------------------------------------------


@dataclass
class Sender:
    """The real sender on a fixed port (a test may start it late)."""

    database_url: str
    registry_target: str
    kafka: KafkaSettings
    port: int = field(default_factory=free_port)
    server: object = None
    #: SenderSettings fields that differ from the bench's (e.g. grpc_max_message_bytes).
    settings: dict = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        settings = SenderSettings(
            sender_database_url=self.database_url,
            registry_target=self.registry_target,
            sender_retry_schedule="50ms,50ms",
            sender_poll_interval_seconds=0.05,
            sender_allowed_networks="127.0.0.0/8",
            sender_attempt_timeout_seconds=5.0,
            shutdown_grace_seconds=0.5,
            **self.settings,
        )
        self.server = await build_sender(settings, self.kafka)
        await self.server.start(self.target)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0.5)
            self.server = None


# -- the matcher ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_matcher(
    broker: Kafka, registry_target: str, sender_target: str, wait_assigned: bool = True, **overrides
) -> AsyncIterator[MatcherServer]:
    """A matcher on port 0 with a group of its own; stopped (and its offsets committed) afterwards."""
    values = dict(
        registry_target=registry_target,
        sender_target=sender_target,
        matcher_group_id=f"matcher-{uuid.uuid4().hex[:8]}",
        matcher_session_timeout_ms=SESSION_TIMEOUT_MS,
        matcher_max_backoff_seconds=0.5,
        shutdown_grace_seconds=2.0,
    )
    values.update(overrides)
    server = await build_server(MatcherSettings(**values), broker.settings())
    await server.start("127.0.0.1:0")
    try:
        if wait_assigned:
            await asyncio.wait_for(server.matcher.consumer.assigned.wait(), 30)
        yield server
    finally:
        await server.stop()


def group_of(server: MatcherServer) -> str:
    return server.matcher.settings.matcher_group_id
