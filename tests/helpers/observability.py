"""The observability tests' helpers: the account, application and signing secret of their pipeline, a
valid incoming message, the services' captured log lines, and the pipeline itself (registry, sender
and matcher wired together) with the calls the tests make on it. The fixtures are in
tests/observability/conftest.py."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from dataclasses import dataclass, field

import grpc
from aiohttp import web
from confluent_kafka import Producer

from hooks.registry.v1 import (
    applications_pb2,
    endpoints_pb2,
    endpoints_pb2_grpc,
    filters_pb2,
    filters_pb2_grpc,
)
from services.common.identity import identity_metadata
from services.common.settings import KafkaSettings

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
