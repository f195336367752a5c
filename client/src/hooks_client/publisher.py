"""Publishing events to hooks: `Publisher` (blocking) and `AsyncPublisher` (asyncio), over Kafka.

    with Publisher() as publisher:                       # HOOKS_KAFKA_BOOTSTRAP_SERVERS, hooks.outbox
        sent = publisher.publish(application="policies", event_type="policy-triggered", level="",
                                 message={"policy": "p1"}, account_id="000001")
        print(sent.id, sent.partition, sent.offset)

Each message is checked first with the rules hooks' matcher applies (`hooks_client.envelope`): one
that breaks them raises `Rejected` (with the dead-letter reason it would get) and is not sent. It gets
a stable `id` (a uuid4 unless one is given: hooks de-duplicates deliveries on it, so publishing the
same id again after a doubtful failure never delivers twice) and `timestamp` now unless given. The
record's key is the id unless `key` is given: messages published with one key go to one partition, in the
order published, and an endpoint whose deliveries are ORDERED receives them in that order. `publish` returns once the broker acknowledged the message; `submit` returns
a future instead, for many messages in flight. Closing (or leaving the `with` block) waits for every
message submitted.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from hooks_client.envelope import build_envelope, encode
from hooks_client.kafka import Published, PublishError, RecordProducer, topic_or_default
from hooks_client.limits import MAX_MESSAGE_BYTES


def checked_message(
    *,
    application: str,
    event_type: str,
    level: str,
    message: Any,
    account_id: str,
    id: str | None,
    timestamp: datetime | str | None,
    max_message_bytes: int,
) -> tuple[str, bytes]:
    """(id, the bytes for the topic) of one message, checked with the matcher's rules (raises Rejected)."""
    identity = id if id is not None else str(uuid.uuid4())
    document = build_envelope(
        id=identity,
        application=application,
        event_type=event_type,
        level=level,
        account_id=account_id,
        timestamp=timestamp if timestamp is not None else datetime.now(UTC),
        message=message,
    )
    return identity, encode(document, max_message_bytes)


class Publisher:
    """Publishes to the incoming topic and waits for the broker's acknowledgement (thread-safe).

    - `bootstrap_servers`: default HOOKS_KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092.
    - `topic`: default HOOKS_KAFKA_TOPIC, else hooks.outbox.
    - `config`: librdkafka settings to add (security.protocol, sasl.username, ssl.ca.location...).
    - `max_message_bytes`: the matcher's limit (HOOKS_MATCHER_MAX_MESSAGE_BYTES; 256 KiB by default).
    - `delivery_timeout`: seconds the broker has to acknowledge a message before it fails.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str | None = None,
        topic: str | None = None,
        config: dict[str, Any] | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        delivery_timeout: float = 30.0,
    ):
        self.topic = topic_or_default(topic)
        self.max_message_bytes = max_message_bytes
        self.delivery_timeout = delivery_timeout
        self._producer = RecordProducer(
            bootstrap_servers=bootstrap_servers, config=config, delivery_timeout=delivery_timeout
        )

    @property
    def bootstrap_servers(self) -> str:
        return self._producer.bootstrap_servers

    @property
    def last_broker_error(self) -> str:
        """The last error librdkafka reported about the connection (empty when none)."""
        return self._producer.last_error

    def submit(
        self,
        *,
        application: str,
        event_type: str,
        level: str = "",
        message: Any,
        account_id: str,
        id: str | None = None,
        timestamp: datetime | str | None = None,
        key: str | None = None,
    ) -> Future[Published]:
        """Checks and queues one message (raises Rejected at once); the future is its acknowledgement
        (or PublishError)."""
        identity, raw = checked_message(
            application=application,
            event_type=event_type,
            level=level,
            message=message,
            account_id=account_id,
            id=id,
            timestamp=timestamp,
            max_message_bytes=self.max_message_bytes,
        )
        return self._producer.produce(self.topic, raw, key=(identity if key is None else key).encode(), id=identity)

    def publish(
        self,
        *,
        application: str,
        event_type: str,
        level: str = "",
        message: Any,
        account_id: str,
        id: str | None = None,
        timestamp: datetime | str | None = None,
        key: str | None = None,
    ) -> Published:
        """Checks and publishes one message; returns once the broker acknowledged it. Raises Rejected
        (not sent) or PublishError (not acknowledged: publishing it again with the same id is safe)."""
        future = self.submit(
            application=application,
            event_type=event_type,
            level=level,
            message=message,
            account_id=account_id,
            id=id,
            timestamp=timestamp,
            key=key,
        )
        return future.result(self.delivery_timeout + 5)

    def flush(self, timeout: float = 30.0) -> None:
        """Waits for every submitted message; raises PublishError if some are still unacknowledged."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise PublishError(f"{remaining} message(s) not acknowledged within {timeout}s")

    def close(self, timeout: float = 30.0) -> None:
        """Flushes (see `flush`) and releases the producer."""
        remaining = self._producer.close(timeout)
        if remaining:
            raise PublishError(f"closed with {remaining} message(s) not acknowledged within {timeout}s")

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncPublisher:
    """`Publisher` for asyncio: `await publish(...)` returns once the broker acknowledged the message;
    `submit(...)` returns an asyncio future. Same options as Publisher."""

    def __init__(
        self,
        *,
        bootstrap_servers: str | None = None,
        topic: str | None = None,
        config: dict[str, Any] | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        delivery_timeout: float = 30.0,
    ):
        self._publisher = Publisher(
            bootstrap_servers=bootstrap_servers,
            topic=topic,
            config=config,
            max_message_bytes=max_message_bytes,
            delivery_timeout=delivery_timeout,
        )

    @property
    def topic(self) -> str:
        return self._publisher.topic

    def submit(
        self,
        *,
        application: str,
        event_type: str,
        level: str = "",
        message: Any,
        account_id: str,
        id: str | None = None,
        timestamp: datetime | str | None = None,
        key: str | None = None,
    ) -> asyncio.Future[Published]:
        """Checks and queues one message (raises Rejected at once); the future is its acknowledgement."""
        return asyncio.wrap_future(
            self._publisher.submit(
                application=application,
                event_type=event_type,
                level=level,
                message=message,
                account_id=account_id,
                id=id,
                timestamp=timestamp,
                key=key,
            )
        )

    async def publish(
        self,
        *,
        application: str,
        event_type: str,
        level: str = "",
        message: Any,
        account_id: str,
        id: str | None = None,
        timestamp: datetime | str | None = None,
        key: str | None = None,
    ) -> Published:
        """Checks and publishes one message; returns once the broker acknowledged it (see Publisher)."""
        return await self.submit(
            application=application,
            event_type=event_type,
            level=level,
            message=message,
            account_id=account_id,
            id=id,
            timestamp=timestamp,
            key=key,
        )

    async def flush(self, timeout: float = 30.0) -> None:
        await asyncio.to_thread(self._publisher.flush, timeout)

    async def close(self, timeout: float = 30.0) -> None:
        await asyncio.to_thread(self._publisher.close, timeout)

    async def __aenter__(self) -> AsyncPublisher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
