"""The observability test bench: the whole pipeline in this process (registry, sender and matcher as
real gRPC servers on port 0, the session's real broker, a real HTTP receiver on loopback), with the
services' logging configured the way `python -m services.<name>` configures it (JSON, at DEBUG) and
every line it writes captured, so a test can read what an operator would read."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
import pytest_asyncio
import structlog
from aiohttp import web
from confluent_kafka import Producer

from hooks.registry.v1 import (
    applications_pb2,
    applications_pb2_grpc,
    endpoints_pb2,
    endpoints_pb2_grpc,
    filters_pb2,
    filters_pb2_grpc,
)
from services.common.identity import identity_metadata
from services.common.logging import configure_logging
from services.common.settings import KafkaSettings
from tests.helpers.groups import SESSION_TIMEOUT_MS
from tests.helpers.waiting import eventually

ACCOUNT = "obs-account"
#: A signing secret the tests look for in the logs (it must never be there).
SECRET = "whsec_T2JzZXJ2YWJpbGl0eVNlY3JldEJ5dGVzMTIzNDU2Nzg="
SHOP = applications_pb2.Application(
    name="shop",
    title="Shop",
    event_types=[
        applications_pb2.EventType(
            id="order-placed", title="Order placed", levels=[applications_pb2.Level(id="big", title="Big")]
        )
    ],
)


def incoming(account: str = ACCOUNT, **overrides) -> dict:
    """A valid message for hooks.outbox."""
    return {
        "id": f"msg-{uuid.uuid4().hex[:12]}",
        "application": "shop",
        "event_type": "order-placed",
        "level": "big",
        "message": {"text": "an order"},
        "timestamp": "2026-11-27T10:00:00Z",
        "account_id": account,
        **overrides,
    }


# -- logs -----------------------------------------------------------------------------------------


class CapturedLogs:
    """Everything the services logged since the fixture began, as configure_logging rendered it."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict]:
        """Each line as the JSON object it must be."""
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def where(self, **fields) -> list[dict]:
        return [line for line in self.lines() if all(line.get(k) == v for k, v in fields.items())]


@pytest.fixture
def captured_logs(monkeypatch) -> CapturedLogs:
    """configure_logging("debug", "json") as a service does, writing to a buffer instead of stderr;
    the previous logging set-up comes back afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_structlog = structlog.get_config()
    stream = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", stream)
        configure_logging("debug", "json")
    try:
        yield CapturedLogs(stream)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_structlog)


# -- the pipeline ---------------------------------------------------------------------------------


@dataclass
class Receiver:
    """POST /<anything> on loopback: recorded (path, headers, raw body), answered 200."""

    port: int = 0
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path, {k.lower(): v for k, v in request.headers.items()}, await request.read()))
        return web.Response(text="ok")


@dataclass
class Pipeline:
    bootstrap: str
    kafka: KafkaSettings
    receiver: Receiver
    registry_channel: grpc.aio.Channel
    matcher: object
    sender: object

    async def endpoint(self, name: str, path: str, account: str = ACCOUNT, secret: str = SECRET):
        """A webhook endpoint of `account` for every message of `shop`."""
        metadata = identity_metadata(account)
        endpoints = endpoints_pb2_grpc.EndpointServiceStub(self.registry_channel)
        created = await endpoints.CreateEndpoint(
            endpoints_pb2.CreateEndpointRequest(
                endpoint=endpoints_pb2.Endpoint(
                    name=name,
                    type=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK,
                    target=self.receiver.url(path),
                    enabled=True,
                    secret=secret,
                )
            ),
            metadata=metadata,
        )
        filters = filters_pb2_grpc.FilterServiceStub(self.registry_channel)
        await filters.CreateFilter(
            filters_pb2.CreateFilterRequest(
                filter=filters_pb2.Filter(enabled=True, endpoint_ids=[created.endpoint.id], applications=["shop"])
            ),
            metadata=metadata,
        )
        return created.endpoint

    def produce(self, records: list[dict | bytes], partition: int = 0) -> None:
        """Publishes the records to hooks.outbox the way an application does (a plain producer)."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        for record in records:
            value = record if isinstance(record, bytes) else json.dumps(record).encode()
            producer.produce(self.kafka.topic, value=value, partition=partition)
        assert producer.flush(30) == 0

    async def aproduce(self, records: list[dict | bytes], partition: int = 0) -> None:
        await asyncio.to_thread(self.produce, records, partition)


@pytest_asyncio.fixture
async def pipeline(kafka, topics, tmp_path) -> AsyncIterator[Pipeline]:
    """Registry, sender and matcher on port 0 (SQLite), wired to each other, this test's topics and a
    receiver; `shop` is registered. Logging is whatever the test configured before asking for it."""
    from services.common.channels import channel
    from services.matcher.server import build_server as build_matcher
    from services.matcher.settings import MatcherSettings
    from services.registry.server import build_server as build_registry
    from services.registry.settings import RegistrySettings
    from services.sender.server import build_server as build_sender
    from services.sender.settings import SenderSettings

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.port = site._server.sockets[0].getsockname()[1]

    kafka_settings = KafkaSettings(
        bootstrap_servers=kafka.bootstrap_servers, topic=topics["outbox"], dlq_topic=topics["dlq"]
    )
    servers = []
    registry_channel = None
    try:
        registry = await build_registry(
            RegistrySettings(registry_database_url=f"sqlite:///{tmp_path / 'registry.db'}", shutdown_grace_seconds=1)
        )
        registry_target = f"127.0.0.1:{await registry.start('127.0.0.1:0')}"
        servers.append(registry)
        registry_channel = channel(registry_target)
        await applications_pb2_grpc.ApplicationServiceStub(registry_channel).RegisterApplication(
            applications_pb2.RegisterApplicationRequest(application=SHOP)
        )
        sender = await build_sender(
            SenderSettings(
                sender_database_url=f"sqlite:///{tmp_path / 'sender.db'}",
                registry_target=registry_target,
                sender_allowed_networks="127.0.0.0/8",
                sender_poll_interval=0.2,
                shutdown_grace_seconds=1,
            ),
            kafka_settings,
        )
        sender_target = f"127.0.0.1:{await sender.start('127.0.0.1:0')}"
        servers.append(sender)
        matcher = await build_matcher(
            MatcherSettings(
                registry_target=registry_target,
                sender_target=sender_target,
                matcher_group_id=f"obs-{uuid.uuid4().hex[:8]}",
                matcher_session_timeout_ms=SESSION_TIMEOUT_MS,
                matcher_max_backoff_seconds=0.5,
                matcher_stats_interval_ms=200,
                matcher_deliver_timeout_seconds=2,
                shutdown_grace_seconds=1,
            ),
            kafka_settings,
        )
        await matcher.start("127.0.0.1:0")
        servers.append(matcher)
        await eventually(matcher.matcher.consumer.assigned.is_set, message="partitions assigned")
        yield Pipeline(kafka.bootstrap_servers, kafka_settings, receiver, registry_channel, matcher, sender)
    finally:
        for server in reversed(servers):
            await server.stop(1)
        if registry_channel is not None:
            await registry_channel.close()
        await runner.cleanup()
