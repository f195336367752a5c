"""The whole of hooks in this process, over real channels, for tests that use it as a user would.

    async with running_stack(database_url, kafka.bootstrap_servers, topics) as stack:
        await stack.register(application)                       # RegisterApplication
        endpoint = await stack.subscribe("acct", "/hook")         # a webhook endpoint + a catch-all filter
        [(partition, offset, produced_at)] = await stack.produce([b'{"application": ...}'])
        await eventually(lambda: stack.receiver.at("/hook"))
        dead = await stack.dead_letters.read()                    # the DLQ topic, read back

What runs: the registry, the sender, the matcher (each `build_server` of its package, on 127.0.0.1
port 0), the gateway (`gateway.app.build_app` on a real socket), a loopback HTTP receiver that
answers 200 to every POST and records it, a plain confluent-kafka Producer onto the outbox topic
and a Consumer reading the dead-letter topic from its start. The registry and the sender share
the database (their own tables) on PostgreSQL; on SQLite the sender has a file of its own beside
the registry's, as in production each service owns its file. The topics are the caller's (the
`topics` fixture: created on the session's broker). Everything is stopped when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import httpx
from aiohttp import web
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from gateway.app import build_app
from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from hooks.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from hooks.registry.v1 import (
    applications_pb2,
    applications_pb2_grpc,
    endpoints_pb2,
    endpoints_pb2_grpc,
    filters_pb2,
    filters_pb2_grpc,
)
from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
from services.common.channels import channel
from services.common.identity import identity_metadata
from services.common.settings import KafkaSettings
from services.matcher.server import MatcherServer
from services.matcher.server import build_server as build_matcher
from services.matcher.settings import MatcherSettings
from services.registry.server import build_server as build_registry
from services.registry.settings import RegistrySettings
from services.sender.server import build_server as build_sender
from services.sender.settings import SenderSettings
from tests.helpers.groups import SESSION_TIMEOUT_MS
from tests.helpers.http import Received, receiving
from tests.helpers.registry import LOOPBACK  # targets there are allowed: the receiver listens there


@dataclass
class Receiver:
    """POST /<anything> on loopback: recorded, answered 200, or with the statuses `script[path]` lists,
    one per request, first."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def at(self, path: str) -> list[Received]:
        """What arrived on `path` ("/hook"), in order of arrival."""
        return [request for request in self.received if request.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.received.append(Received(request.path, headers, await request.read(), time.monotonic()))
        statuses = self.script.get(request.path)
        return web.Response(status=statuses.pop(0) if statuses else 200, text="ok")


@dataclass(frozen=True)
class DeadLetter:
    """A record of the dead-letter topic: where its original came from, why, and its value."""

    partition: int
    offset: int
    reason: str
    description: str
    value: bytes | None
    headers: dict[str, bytes]
    #: The record's key, and its headers in order (the original's, then hooks.error.*).
    key: bytes | None = None
    header_list: tuple[tuple[str, bytes], ...] = ()


class TopicReader:
    """Reads a topic from its start, every partition, with a Consumer of its own (no group offsets);
    `read()` returns everything read so far, after reading what has arrived since the last call."""

    def __init__(self, bootstrap: str, topic: str):
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        self._lock = threading.Lock()
        self.records: list[Message] = []

    def _read(self) -> list[Message]:
        with self._lock:  # one consume at a time: a Consumer is not safe for concurrent calls
            while True:
                batch = [m for m in self._consumer.consume(500, 0.05) if m.error() is None]
                self.records.extend(batch)
                if not batch:
                    return list(self.records)

    async def read(self) -> list[Message]:
        return await asyncio.to_thread(self._read)

    def close(self) -> None:
        with self._lock:
            self._consumer.close()


class DeadLetterTopic(TopicReader):
    """The dead-letter topic read back, each record with the origin and reason its headers name."""

    async def letters(self) -> dict[tuple[int, int], list[DeadLetter]]:
        """{(partition, offset) of the original on the outbox: its dead letters} (normally one)."""
        found: dict[tuple[int, int], list[DeadLetter]] = {}
        for record in await self.read():
            headers = {name: value or b"" for name, value in record.headers() or ()}
            try:
                origin = (int(headers["hooks.error.partition"]), int(headers["hooks.error.offset"]))
            except (KeyError, ValueError):
                origin = (-1, -1)  # a dead letter that does not say where it came from: seen by no one
            letter = DeadLetter(
                partition=origin[0],
                offset=origin[1],
                reason=headers.get("hooks.error.reason", b"").decode(errors="replace"),
                description=headers.get("hooks.error.message", b"").decode(errors="replace"),
                value=record.value(),
                headers=headers,
                key=record.key(),
                header_list=tuple((name, value or b"") for name, value in record.headers() or ()),
            )
            found.setdefault(origin, []).append(letter)
        return found


@dataclass
class Stack:
    """The running system; see the module's docstring."""

    bootstrap: str
    kafka: KafkaSettings
    receiver: Receiver
    registry: object
    sender: object
    matcher: MatcherServer
    gateway: GatewayServer
    registry_target: str
    sender_target: str
    matcher_target: str
    http: httpx.AsyncClient
    dead_letters: DeadLetterTopic
    producer: Producer
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    #: What running_stack was given for the gateway, for a gateway started again (start_gateway).
    gateway_settings: dict[str, object] | None = None

    def _channel(self, target: str) -> grpc.aio.Channel:
        made = channel(target)
        self.channels.append(made)
        return made

    def __post_init__(self) -> None:
        registry = self._channel(self.registry_target)
        self.applications = applications_pb2_grpc.ApplicationServiceStub(registry)
        self.endpoints = endpoints_pb2_grpc.EndpointServiceStub(registry)
        self.filters = filters_pb2_grpc.FilterServiceStub(registry)
        self.deliveries = deliveries_pb2_grpc.DeliveryServiceStub(self._channel(self.sender_target))
        self.messages = matcher_pb2_grpc.MatcherServiceStub(self._channel(self.matcher_target))

    # -- tenants ----------------------------------------------------------------------------------

    async def register(self, application: applications_pb2.Application) -> None:
        await self.applications.RegisterApplication(
            applications_pb2.RegisterApplicationRequest(application=application)
        )

    async def subscribe(
        self, account: str, path: str, endpoint_fields: dict | None = None, **filter_fields
    ) -> endpoints_pb2.Endpoint:
        """A webhook endpoint of `account` posting to the receiver's `path` (with `endpoint_fields`),
        and an enabled filter sending it what `filter_fields` select (everything of the account when
        none are given)."""
        metadata = identity_metadata(account)
        created = await self.endpoints.CreateEndpoint(
            endpoints_pb2.CreateEndpointRequest(
                endpoint=endpoints_pb2.Endpoint(
                    **{
                        "name": f"ep-{uuid.uuid4().hex[:8]}",
                        "type": endpoints_pb2.ENDPOINT_TYPE_WEBHOOK,
                        "target": self.receiver.url(path),
                        "enabled": True,
                        **(endpoint_fields or {}),
                    }
                )
            ),
            metadata=metadata,
        )
        await self.filters.CreateFilter(
            filters_pb2.CreateFilterRequest(
                filter=filters_pb2.Filter(
                    name=f"f-{uuid.uuid4().hex[:8]}", enabled=True, endpoint_ids=[created.endpoint.id], **filter_fields
                )
            ),
            metadata=metadata,
        )
        return created.endpoint

    # -- entries ----------------------------------------------------------------------------------

    def _produce(
        self, records: list[bytes | None], partition: int | None, key: bytes | None, headers: list | None
    ) -> list[tuple[int, int, float]]:
        placed: list[tuple[int, int, float] | None] = [None] * len(records)
        failures: list[str] = []

        def report(index: int, started: float):
            def on_delivery(error, message: Message) -> None:
                if error is not None:
                    failures.append(f"record {index}: {error}")
                else:
                    placed[index] = (message.partition(), message.offset(), started)

            return on_delivery

        where = {} if partition is None else {"partition": partition}
        for index, record in enumerate(records):
            self.producer.produce(
                self.kafka.topic,
                value=record,
                key=key,
                headers=headers,
                on_delivery=report(index, time.monotonic()),
                **where,
            )
            self.producer.poll(0)
        assert self.producer.flush(30) == 0, "records still unacknowledged by the broker"
        assert not failures, failures
        return placed  # type: ignore[return-value]

    async def produce(
        self,
        records: list[bytes | None],
        partition: int | None = None,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> list[tuple[int, int, float]]:
        """Produces raw records (None: a tombstone) onto the outbox topic, each with `key` and
        `headers` (unkeyed and without by default), as any application may, to `partition` or where
        the partitioner puts them; returns (partition, offset, time.monotonic() when it was produced)
        of each."""
        return await asyncio.to_thread(self._produce, records, partition, key, headers)

    async def publish(
        self, request: matcher_pb2.PublishMessageRequest, metadata: tuple[tuple[str, str], ...]
    ) -> matcher_pb2.PublishMessageResponse:
        """PublishMessage over gRPC with the given metadata (x-rh-identity); raises AioRpcError."""
        return await self.messages.PublishMessage(request, metadata=metadata, timeout=30)

    async def list_deliveries(self, account: str, **fields) -> list[deliveries_pb2.Delivery]:
        """Every delivery of `account` ListDeliveries answers, page after page; raises AioRpcError."""
        found: list[deliveries_pb2.Delivery] = []
        token = ""
        while True:
            page = await self.deliveries.ListDeliveries(
                deliveries_pb2.ListDeliveriesRequest(page_token=token, **fields),
                metadata=identity_metadata(account),
                timeout=30,
            )
            found.extend(page.deliveries)
            token = page.next_page_token
            if not token:
                return found

    async def stop_gateway(self) -> None:
        """Stops the gateway, ending its open streams as a deploy or a lost connection would; `start_gateway`
        serves a new one on the same port (what a client reconnecting finds)."""
        await self.gateway.stop()

    async def start_gateway(self) -> None:
        port = self.gateway.port
        self.gateway = _gateway(self.registry_target, self.sender_target, self.matcher_target, self.gateway_settings)
        await self.gateway.start(f"127.0.0.1:{port}")

    # -- what the matcher holds -------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Messages the matcher's consumer is still working on (validating, routing, handing over)."""
        return self.matcher.matcher.consumer.in_flight


def _gateway(
    registry_target: str, sender_target: str, matcher_target: str, settings: dict[str, object] | None
) -> GatewayServer:
    given: dict[str, object] = {
        "registry_target": registry_target,
        "sender_target": sender_target,
        "matcher_target": matcher_target,
        **(settings or {}),
    }
    return GatewayServer(build_app(GatewaySettings(**given)), shutdown_grace_seconds=0.5)


def _sender_database(database_url: str) -> str:
    if database_url.startswith("sqlite"):
        return database_url.removesuffix(".db") + "-sender.db"
    return database_url


@contextlib.asynccontextmanager
async def running_stack(
    database_url: str,
    bootstrap: str,
    topics: dict[str, str],
    *,
    sender_database_url: str | None = None,
    registry_settings: dict[str, object] | None = None,
    sender_settings: dict[str, object] | None = None,
    matcher_settings: dict[str, object] | None = None,
    gateway_settings: dict[str, object] | None = None,
) -> AsyncIterator[Stack]:
    """The whole system on `database_url` and the topics {"outbox": ..., "dlq": ...} of the broker at
    `bootstrap`; stopped, in reverse order, when the block ends.

    The sender's database is `sender_database_url` when given (else the registry's, or a file beside
    it on SQLite); `registry_settings`, `sender_settings`, `matcher_settings` and `gateway_settings`
    are fields of RegistrySettings, SenderSettings, MatcherSettings and GatewaySettings that differ
    from the fast ones used here (e.g. {"sender_retry_schedule": "1h"}, {"gateway_development": True})."""
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic=topics["outbox"], dlq_topic=topics["dlq"])
    async with contextlib.AsyncExitStack() as stack:
        receiver = await stack.enter_async_context(
            receiving(Receiver(), "/{tail:.*}", client_max_size=16 * 1024 * 1024)
        )

        registry = await build_registry(
            RegistrySettings(
                **{
                    "registry_database_url": database_url,
                    "registry_change_poll_seconds": 0.05,
                    "shutdown_grace_seconds": 0.5,
                    "sender_allowed_networks": LOOPBACK,
                    **(registry_settings or {}),
                }
            )
        )
        registry_target = f"127.0.0.1:{await registry.start('127.0.0.1:0')}"
        stack.push_async_callback(registry.stop, 0.5)

        sender = await build_sender(
            SenderSettings(
                **{
                    "sender_database_url": sender_database_url or _sender_database(database_url),
                    "registry_target": registry_target,
                    "sender_allowed_networks": LOOPBACK,
                    "sender_retry_schedule": "50ms,50ms",
                    "sender_poll_interval_seconds": 0.05,
                    "sender_attempt_timeout_seconds": 5.0,
                    "shutdown_grace_seconds": 0.5,
                    **(sender_settings or {}),
                }
            ),
            kafka,
        )
        sender_target = f"127.0.0.1:{await sender.start('127.0.0.1:0')}"
        stack.push_async_callback(sender.stop, 0.5)

        matcher = await build_matcher(
            MatcherSettings(
                **{
                    "registry_target": registry_target,
                    "sender_target": sender_target,
                    "matcher_group_id": f"stack-{uuid.uuid4().hex[:8]}",
                    "matcher_session_timeout_ms": SESSION_TIMEOUT_MS,
                    "matcher_max_backoff_seconds": 0.5,
                    "matcher_deliver_timeout_seconds": 2.0,
                    "shutdown_grace_seconds": 1.0,
                    **(matcher_settings or {}),
                }
            ),
            kafka,
        )
        matcher_target = f"127.0.0.1:{await matcher.start('127.0.0.1:0')}"
        stack.push_async_callback(matcher.stop, 1.0)
        await asyncio.wait_for(matcher.matcher.consumer.assigned.wait(), 30)

        gateway = _gateway(registry_target, sender_target, matcher_target, gateway_settings)
        gateway_port = await gateway.start("127.0.0.1:0")
        stack.push_async_callback(gateway.stop)
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway_port}", timeout=30)
        )

        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 0})
        stack.callback(producer.flush, 10)
        dead_letters = DeadLetterTopic(bootstrap, topics["dlq"])
        stack.callback(dead_letters.close)

        running = Stack(
            bootstrap=bootstrap,
            kafka=kafka,
            receiver=receiver,
            registry=registry,
            sender=sender,
            matcher=matcher,
            gateway=gateway,
            registry_target=registry_target,
            sender_target=sender_target,
            matcher_target=matcher_target,
            http=http,
            dead_letters=dead_letters,
            producer=producer,
            gateway_settings=gateway_settings,
        )
        try:
            yield running
        finally:
            await running.gateway.stop()  # the one start_gateway started, if any
            for made in running.channels:
                await made.close()
