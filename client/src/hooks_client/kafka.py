"""One Kafka producer with a thread serving its callbacks: what every publisher of this package sends
through, and what tools use to re-publish records exactly as they are (a dead-letter replay).

`RecordProducer.produce()` returns a `concurrent.futures.Future` that is settled when the broker
acknowledged the record (acks=all, idempotent: librdkafka's own retries never duplicate it), or
failed with `PublishError` when it did not within `delivery_timeout` seconds. `await send()` is the
same for asyncio code (the matcher's dead letters and PublishMessage, the sender's outbox): it never
blocks the event loop, not even while librdkafka's local queue is full.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger(__name__)

#: Where the broker is when neither `bootstrap_servers` nor HOOKS_KAFKA_BOOTSTRAP_SERVERS says.
DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
#: The incoming topic when neither `topic` nor HOOKS_KAFKA_TOPIC says.
DEFAULT_TOPIC = "hooks.outbox"


#: librdkafka's default `message.max.bytes`: the largest record a producer sends unless told otherwise.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000


class PublishError(Exception):
    """The message was not accepted: the broker did not acknowledge it (or hooks refused it over gRPC).
    `error` is librdkafka's, where it gave one (its `code()` says e.g. that the record is too large)."""

    def __init__(self, description: str, error: KafkaError | None = None):
        super().__init__(description)
        self.error = error


@dataclass(frozen=True, slots=True)
class Published:
    """Where an acknowledged message is: its id, topic, partition and offset."""

    id: str
    topic: str
    partition: int
    offset: int


def bootstrap_servers_or_default(bootstrap_servers: str | None) -> str:
    return bootstrap_servers or os.environ.get("HOOKS_KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP_SERVERS


def topic_or_default(topic: str | None) -> str:
    return topic or os.environ.get("HOOKS_KAFKA_TOPIC") or DEFAULT_TOPIC


class RecordProducer:
    """A confluent-kafka Producer (acks=all, idempotent) whose delivery reports settle futures.

    `config` adds or overrides librdkafka settings (security.protocol, sasl.*, ssl.ca.location...)."""

    def __init__(
        self,
        *,
        bootstrap_servers: str | None = None,
        config: dict[str, Any] | None = None,
        delivery_timeout: float = 30.0,
    ):
        self.last_error: str = ""
        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers_or_default(bootstrap_servers),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            # A record not acknowledged in time fails with a delivery report, never silently.
            "message.timeout.ms": int(delivery_timeout * 1000),
            "error_cb": self._on_error,
        }
        settings.update(config or {})
        self.bootstrap_servers = settings["bootstrap.servers"]
        #: The largest record this producer sends (its `message.max.bytes`); a broker may take less.
        self.max_message_bytes = int(settings.get("message.max.bytes", DEFAULT_MAX_MESSAGE_BYTES))
        try:
            self._producer = Producer(settings)
        except KafkaException as exc:
            raise PublishError(f"cannot create a Kafka producer: {exc}") from exc
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hooks-client-producer", daemon=True)
        self._thread.start()

    def _on_error(self, error: KafkaError) -> None:
        self.last_error = str(error)

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                self._producer.poll(0.1)
            except Exception:  # a delivery report's callback failed: the later ones must still be served
                log.exception("a Kafka delivery report could not be handled")

    def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes | None]] | None = None,
        partition: int | None = None,
        id: str = "",
    ) -> Future[Published]:
        """Queues one record; the future is its acknowledgement (a `Published` naming `id`)."""
        while True:
            try:
                return self._queue(topic, value, key, headers, partition, id)
            except BufferError:  # the local queue is full: wait for acknowledgements to drain it
                self._producer.flush(0.1)

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes | None]] | None = None,
        partition: int | None = None,
        id: str = "",
    ) -> Published:
        """Produces one record and returns once the broker acknowledged it; raises PublishError."""
        while True:
            try:
                future = self._queue(topic, value, key, headers, partition, id)
                break
            except BufferError:  # the local queue is full: let the callback thread drain it
                await asyncio.sleep(0.05)
        return await asyncio.wrap_future(future)

    def _queue(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes | None]] | None,
        partition: int | None,
        id: str,
    ) -> Future[Published]:
        if self._closed.is_set():
            raise PublishError("the producer is closed")
        future: Future[Published] = Future()
        # Running from now on: a queued record cannot be called back, so the future cannot be cancelled.
        # (A cancelled one, say by an awaiting caller's deadline through asyncio.wrap_future, would make
        # the delivery report's set_result raise in the callback thread, and once killed that thread
        # settled no future again: every later send of the process waited for ever.)
        future.set_running_or_notify_cancel()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                future.set_exception(PublishError(f"not acknowledged by the broker: {error}", error))
            else:
                future.set_result(Published(id, message.topic(), message.partition(), message.offset()))

        where = {} if partition is None else {"partition": partition}
        try:
            self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery, **where)
        except KafkaException as exc:  # e.g. a record larger than message.max.bytes
            raise PublishError(f"refused by the producer: {exc}", exc.args[0] if exc.args else None) from exc
        return future

    def flush(self, timeout: float = 30.0) -> int:
        """Waits until every queued record is acknowledged or failed; returns how many are still queued."""
        return self._producer.flush(timeout)

    def close(self, timeout: float = 30.0) -> int:
        """Flushes, then stops the callback thread; returns how many records were left unacknowledged."""
        if self._closed.is_set():
            return 0
        remaining = self._producer.flush(timeout)
        self._closed.set()
        self._thread.join(5)
        self._producer.poll(0)  # settle what the last flush reported
        del self._producer  # librdkafka's handle goes now, not whenever this object is collected
        return remaining
