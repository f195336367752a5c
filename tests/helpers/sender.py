"""The sender's test bench: a real sender in-process on port 0 over a real channel (`running_sender`,
given a registry's target), a scriptable HTTP receiver on loopback (aiohttp), and the calls the
sender's tests make (endpoints, events, Deliver streams, waiting for a delivery's status).
The fixtures that start them are in tests/sender/conftest.py."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from google.protobuf import json_format, struct_pb2
from sqlalchemy import update

from hooks.events.v1 import event_pb2
from hooks.registry.v1 import endpoints_pb2, endpoints_pb2_grpc
from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
from services.common.channels import channel
from services.common.db import create_engine
from services.common.identity import identity_metadata
from services.common.settings import KafkaSettings
from services.registry.models import Endpoint
from services.sender.server import build_server
from services.sender.settings import SenderSettings
from tests.helpers import http
from tests.helpers.http import Received
from tests.helpers.kafka import first_record
from tests.helpers.waiting import eventually

# Fast settings: retries in milliseconds, loopback allowed (the receivers live there).
TEST_SETTINGS = dict(
    sender_retry_schedule="50ms,50ms,50ms",
    sender_poll_interval_seconds=0.05,
    sender_allowed_networks="127.0.0.0/8",
    sender_attempt_timeout_seconds=5.0,
    sender_disable_after="1h",
    sender_lease_seconds=30.0,
    shutdown_grace_seconds=0.5,
)


Handler = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


async def _ok(_request: web.Request, _count: int) -> web.StreamResponse:
    return web.Response(text="ok")


@dataclass
class Receiver:
    """An HTTP server on loopback: POST /<name> records the request and answers what `script[name]`
    says (given the request and how many it received before on that path); 200 by default."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    script: dict[str, Handler] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def on(self, name: str) -> list[Received]:
        return [r for r in self.received if r.path == name]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        count = len(self.on(name))
        self.received.append(Received(name, dict(request.headers), await request.read(), time.monotonic()))
        return await self.script.get(name, _ok)(request, count)


def receiving() -> contextlib.AbstractAsyncContextManager[Receiver]:
    """A Receiver serving on 127.0.0.1 (its `port` set) until the block ends."""
    return http.receiving(Receiver())


@dataclass
class Sender:
    server: object
    port: int
    deliveries: deliveries_pb2_grpc.DeliveryServiceStub
    endpoints: endpoints_pb2_grpc.EndpointServiceStub


@contextlib.asynccontextmanager
async def running_sender(
    database_url: str, registry: str, kafka: KafkaSettings | None = None, **overrides: object
) -> AsyncIterator[Sender]:
    """A sender on 127.0.0.1:<port 0> with the bench's TEST_SETTINGS (`overrides` win), using the
    registry at `registry` (host:port), and stubs onto it and onto that registry."""
    settings = SenderSettings(
        sender_database_url=database_url,
        registry_target=registry,
        **{**TEST_SETTINGS, **overrides},
    )
    server = await build_server(settings, kafka or KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    port = await server.start("127.0.0.1:0")
    sender_channel = channel(f"127.0.0.1:{port}")
    registry_channel = channel(registry)
    try:
        yield Sender(
            server,
            port,
            deliveries_pb2_grpc.DeliveryServiceStub(sender_channel),
            endpoints_pb2_grpc.EndpointServiceStub(registry_channel),
        )
    finally:
        await sender_channel.close()
        await registry_channel.close()
        await server.stop(0.5)


def new_account() -> str:
    return f"acct-{uuid.uuid4().hex[:10]}"


async def create_endpoint(
    sender: Sender,
    account: str,
    target: str,
    type: int = endpoints_pb2.ENDPOINT_TYPE_WEBHOOK,
    **fields,
) -> endpoints_pb2.Endpoint:
    endpoint = endpoints_pb2.Endpoint(
        name=fields.pop("name", f"endpoint {uuid.uuid4().hex[:6]}"), type=type, target=target, enabled=True, **fields
    )
    response = await sender.endpoints.CreateEndpoint(
        endpoints_pb2.CreateEndpointRequest(endpoint=endpoint), metadata=identity_metadata(account)
    )
    return response.endpoint


def make_event(account: str, message: object = "disk almost full", **fields) -> event_pb2.Event:
    event = event_pb2.Event(
        id=fields.pop("id", f"evt-{uuid.uuid4().hex}"),
        application=fields.pop("application", "inventory"),
        event_type=fields.pop("event_type", "disk-full"),
        level=fields.pop("level", "critical"),
        account_id=account,
        **fields,
    )
    event.timestamp.FromJsonString("2026-11-27T10:00:00Z")
    value = struct_pb2.Value()
    json_format.ParseDict(message, value)
    event.message.CopyFrom(value)
    return event


async def deliver(sender: Sender, *requests: deliveries_pb2.DeliverRequest) -> list[deliveries_pb2.DeliverResponse]:
    """Sends the requests on one Deliver stream and returns the responses."""
    call = sender.deliveries.Deliver(iter(requests), timeout=30)
    return [response async for response in call]


def request_for(event: event_pb2.Event, *endpoint_ids: str, **fields) -> deliveries_pb2.DeliverRequest:
    return deliveries_pb2.DeliverRequest(
        request_id=fields.pop("request_id", uuid.uuid4().hex), event=event, endpoint_ids=endpoint_ids, **fields
    )


async def get_delivery(sender: Sender, account: str, delivery_id: str) -> deliveries_pb2.Delivery:
    response = await sender.deliveries.GetDelivery(
        deliveries_pb2.GetDeliveryRequest(id=delivery_id), metadata=identity_metadata(account)
    )
    return response.delivery


async def wait_for_status(
    sender: Sender, account: str, delivery_id: str, status: int, timeout: float = 30.0
) -> deliveries_pb2.Delivery:
    async def reached():
        delivery = await get_delivery(sender, account, delivery_id)
        return delivery if delivery.status == status else None

    return await eventually(reached, timeout)


def answer(status: int, text: str = "", headers: dict | None = None) -> Handler:
    """A Receiver script answering every request with `status` (and `text`, `headers`)."""

    async def handler(_request, _count):
        return web.Response(status=status, text=text, headers=headers)

    return handler


def answers(*statuses: int) -> Handler:
    """Answers the n-th request with statuses[n] (the last one from then on)."""

    async def handler(_request, count):
        return web.Response(status=statuses[min(count, len(statuses) - 1)], text=f"answer {count + 1}")

    return handler


def consume_one(bootstrap: str, topic: str, timeout: float = 30.0) -> dict:
    """The first record on `topic` (what the sender published there), as {"key": str, "value": JSON}."""
    record = first_record(bootstrap, topic, timeout)
    return {"key": record.key().decode(), "value": json.loads(record.value())}


async def store_behind_the_registrys_back(database_url: str, endpoint_id: str, **values: object) -> None:
    """Changes an endpoint's row in the registry's database directly: what an endpoint stored before a
    rule existed may hold."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(Endpoint.__table__).where(Endpoint.__table__.c.id == endpoint_id).values(**values)
            )
    finally:
        await engine.dispose()
