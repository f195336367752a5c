"""What the end-to-end tests stand on: the calls a user's tools make to hooks (gRPC with x-rh-identity,
`Hooks`) and what the tests register; HTTP and SMTP receivers on loopback; a plain Kafka producer and
the committed offsets an operator would read. (Services run as real processes, where a test must kill
one, are in tests/helpers/processes.py.)

Nothing here is a fake: the receivers are real aiohttp and aiosmtpd servers; the producer is a plain
confluent-kafka Producer (not hooks' own code), the way an application publishes.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
from aiohttp import web
from confluent_kafka import Consumer, Producer, TopicPartition
from google.protobuf import field_mask_pb2

from hooks.registry.v1 import (
    applications_pb2,
    applications_pb2_grpc,
    endpoints_pb2,
    endpoints_pb2_grpc,
    filters_pb2,
    filters_pb2_grpc,
)
from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
from services.common.identity import identity_metadata
from tests.helpers.http import Received, Served
from tests.helpers.registry import policies
from tests.helpers.smtp import SmtpInbox

ACCOUNT = "e2e-account"
#: A known signing secret, so the test can verify signatures as a receiver would.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: Millisecond retries, so a failed attempt is retried within the test.
FAST_RETRIES = "100ms,200ms,400ms,800ms,1s,1s,1s"

POLICIES = policies("low", "high", more=(applications_pb2.EventType(id="policy-created", title="Policy created"),))


class Hooks:
    """The public and internal gRPC calls a user (or an application) makes, as account ACCOUNT."""

    def __init__(self, registry_target: str, sender_target: str, account: str = ACCOUNT) -> None:
        self.registry_channel = grpc.aio.insecure_channel(registry_target)
        self.sender_channel = grpc.aio.insecure_channel(sender_target)
        self.metadata = identity_metadata(account)
        self.applications = applications_pb2_grpc.ApplicationServiceStub(self.registry_channel)
        self.endpoints = endpoints_pb2_grpc.EndpointServiceStub(self.registry_channel)
        self.filters = filters_pb2_grpc.FilterServiceStub(self.registry_channel)
        self.deliveries = deliveries_pb2_grpc.DeliveryServiceStub(self.sender_channel)

    async def close(self) -> None:
        await self.registry_channel.close()
        await self.sender_channel.close()

    async def register(self, application: applications_pb2.Application = POLICIES) -> None:
        await self.applications.RegisterApplication(
            applications_pb2.RegisterApplicationRequest(application=application)
        )

    async def endpoint(self, name: str, target: str, kind=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK, **fields):
        response = await self.endpoints.CreateEndpoint(
            endpoints_pb2.CreateEndpointRequest(
                endpoint=endpoints_pb2.Endpoint(name=name, type=kind, target=target, enabled=True, **fields)
            ),
            metadata=self.metadata,
        )
        return response.endpoint

    async def filter(self, endpoint_ids: list[str], **fields):
        response = await self.filters.CreateFilter(
            filters_pb2.CreateFilterRequest(
                filter=filters_pb2.Filter(enabled=True, endpoint_ids=endpoint_ids, **fields)
            ),
            metadata=self.metadata,
        )
        return response.filter

    async def update_filter(self, filter_id: str, paths: list[str], **fields):
        response = await self.filters.UpdateFilter(
            filters_pb2.UpdateFilterRequest(
                filter=filters_pb2.Filter(id=filter_id, **fields),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
            ),
            metadata=self.metadata,
        )
        return response.filter

    async def update_endpoint(self, endpoint_id: str, paths: list[str], **fields):
        response = await self.endpoints.UpdateEndpoint(
            endpoints_pb2.UpdateEndpointRequest(
                endpoint=endpoints_pb2.Endpoint(id=endpoint_id, **fields),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
            ),
            metadata=self.metadata,
        )
        return response.endpoint

    async def deliveries_of(self, endpoint_id: str = "", event_id: str = "") -> list[deliveries_pb2.Delivery]:
        response = await self.deliveries.ListDeliveries(
            deliveries_pb2.ListDeliveriesRequest(endpoint_id=endpoint_id, event_id=event_id, page_size=1000),
            metadata=self.metadata,
        )
        return list(response.deliveries)


# -- receivers ----------------------------------------------------------------------------------


@dataclass
class HttpReceiver(Served):
    """An HTTP server on 127.0.0.1 recording every POST (from start() until stop()); answers the statuses
    in `script` first, one per request, then `status` (200 unless a test says)."""

    requests: list[Received] = field(default_factory=list)
    status: int = 200
    script: list[int] = field(default_factory=list)
    port: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Received(request.path, dict(request.headers), body, time.monotonic()))
        status = self.script.pop(0) if self.script else self.status
        return web.Response(status=status, text="ok" if status < 400 else "try again")

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


# -- producing ----------------------------------------------------------------------------------


def incoming(account: str, application: str, event_type: str, level: str = "", message="hello", **extra) -> dict:
    """A message in the incoming format, with a fresh id and the current time."""
    return {
        "id": str(uuid.uuid4()),
        "application": application,
        "event_type": event_type,
        "level": level,
        "account_id": account,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "message": message,
        **extra,
    }


def produce(bootstrap: str, topic: str, messages: list[dict], key: str | None = None) -> None:
    """Publishes with a plain confluent-kafka Producer, as any application would, and waits for acks.
    Keyed by each message's id unless `key` is given (one key: one partition, in order)."""
    failures: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 0})

    def report(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    for message in messages:
        while True:
            try:
                producer.produce(
                    topic, json.dumps(message).encode(), key=(key or message["id"]).encode(), on_delivery=report
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still unconfirmed"
    assert not failures, failures


def committed_total(bootstrap: str, group_id: str, topic: str, partitions: int) -> int:
    """How many messages of `topic` a consumer group has committed as done (summed over partitions)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "log_level": 0})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in offsets)


@dataclass
class Pipeline:
    """What the e2e `pipeline` fixture gives a test: the client, the receivers, the topics and the
    matcher's consumer group."""

    hooks: Hooks
    receiver: HttpReceiver
    smtp: SmtpInbox
    bootstrap: str
    topic: str
    dlq_topic: str
    group_id: str

    def committed(self) -> int:
        return committed_total(self.bootstrap, self.group_id, self.topic, 2)
