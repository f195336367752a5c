"""The matcher process: a gRPC server (MatcherService, health, reflection) and the outbox consumer.

`build_server(settings)` returns a `MatcherServer`, a GrpcServer that owns a `Matcher`: `start()` serves
gRPC and then starts consuming; `stop()` (SIGTERM through `wait()`) turns health NOT_SERVING, stops
consuming, lets in-flight messages finish within the grace period, stores and commits what is done,
closes the consumer (an on_stop hook), drains the gRPC calls, and only then closes the channels and
the producer (PublishMessage calls still being served need it). `server.matcher` is there
for tests (counters, assignment).
"""

from __future__ import annotations

import asyncio

from hooks.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from hooks_client.kafka import RecordProducer
from services.common.broker import ensure_topics
from services.common.channels import channel
from services.common.logging import get_logger
from services.common.server import GrpcServer
from services.common.settings import KafkaSettings
from services.matcher.consumer import OutboxConsumer
from services.matcher.dead_letters import DeadLetters
from services.matcher.route_cache import RouteCache
from services.matcher.schemas import SchemaValidators
from services.matcher.senders import SenderPool
from services.matcher.servicer import MatcherServicer
from services.matcher.settings import MatcherSettings

log = get_logger(__name__)

SERVICE_NAME = matcher_pb2.DESCRIPTOR.services_by_name["MatcherService"].full_name


class Matcher:
    """Everything the matcher holds besides the gRPC server: channels, route cache, compiled schemas,
    sender streams, producer, and the consumer."""

    def __init__(self, settings: MatcherSettings, kafka: KafkaSettings):
        self.settings = settings
        self.kafka = kafka
        self.registry_channel = channel(settings.registry_target, tls=settings.tls)
        self.sender_channel = channel(settings.sender_target, settings.grpc_max_message_bytes, tls=settings.tls)
        self.routes = RouteCache(self.registry_channel, max_backoff=settings.matcher_max_backoff_seconds)
        self.schemas = SchemaValidators(self.routes)
        self.senders = SenderPool(
            self.sender_channel,
            streams=settings.matcher_sender_streams,
            timeout=settings.matcher_deliver_timeout_seconds,
            max_backoff=settings.matcher_max_backoff_seconds,
            max_message_bytes=settings.grpc_max_message_bytes,
        )
        self.producer = RecordProducer(config=kafka.client_config())
        self.consumer = OutboxConsumer(
            settings,
            kafka,
            self.routes,
            self.senders,
            DeadLetters(self.producer, kafka.dlq_topic, settings.matcher_max_backoff_seconds),
            schemas=self.schemas,
        )
        self._started = False

    async def start(self) -> None:
        self.routes.start()
        self.senders.start()
        await self.consumer.start()
        self._started = True

    async def stop_consuming(self, grace: float) -> None:
        """Stops consuming and drains in-flight messages (the channels and producer stay open)."""
        if self._started:
            self._started = False
            await self.consumer.stop(grace)

    async def close(self) -> None:
        """Closes what the consumer and the RPCs used; after `stop_consuming` and the gRPC server's stop."""
        await self.senders.stop()
        await self.routes.stop()
        unacknowledged = await asyncio.to_thread(self.producer.close, 10.0)
        if unacknowledged:
            log.warning("producer closed with undelivered records", count=unacknowledged)
        await self.registry_channel.close()
        await self.sender_channel.close()


class MatcherServer(GrpcServer):
    def __init__(self, settings: MatcherSettings, matcher: Matcher, servicer: MatcherServicer):
        super().__init__(
            "matcher",
            settings,
            [(matcher_pb2_grpc.add_MatcherServiceServicer_to_server, servicer, SERVICE_NAME)],
            on_stop=[self._stop_matcher],
        )
        self.matcher = matcher
        self._closed = False
        self._grace = settings.shutdown_grace_seconds

    async def start(self, address: str) -> int:
        port = await super().start(address)
        await self.matcher.start()
        return port

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, drain the consumer (on_stop), drain the calls, then close the clients."""
        self._grace = self.settings.shutdown_grace_seconds if grace is None else grace
        await super().stop(grace)
        if not self._closed:
            self._closed = True
            await self.matcher.close()

    async def _stop_matcher(self) -> None:
        await self.matcher.stop_consuming(self._grace)


async def build_server(settings: MatcherSettings, kafka: KafkaSettings | None = None) -> MatcherServer:
    """The matcher, ready to `await server.start(address)`; Kafka from HOOKS_KAFKA_* unless given."""
    kafka = kafka or KafkaSettings()
    if kafka.create_topics:
        await asyncio.to_thread(
            ensure_topics, kafka.client_config(), [kafka.topic, kafka.dlq_topic], kafka.topic_partitions
        )
    matcher = Matcher(settings, kafka)
    servicer = MatcherServicer(
        matcher.routes, matcher.producer, kafka, settings.matcher_max_message_bytes, schemas=matcher.schemas
    )
    return MatcherServer(settings, matcher, servicer)
