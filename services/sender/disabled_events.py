"""Telling an endpoint's owner that hooks disabled it: an `endpoint-disabled` event of the built-in
application `hooks`, published to the incoming topic like any application's event, so it reaches the
owner through the owner's own filters."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

from confluent_kafka import KafkaException, Producer

from services.common.logging import get_logger
from services.common.settings import KafkaSettings

log = get_logger(__name__)

APPLICATION = "hooks"
EVENT_TYPE = "endpoint-disabled"


def endpoint_disabled_message(account_id: str, endpoint_id: str, endpoint_name: str, reason: str) -> dict:
    """The incoming-message JSON (application, event_type, level, message, timestamp, account_id, id)."""
    return {
        "id": str(uuid.uuid4()),
        "application": APPLICATION,
        "event_type": EVENT_TYPE,
        "level": "",
        "account_id": account_id,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "message": {"endpoint_id": endpoint_id, "endpoint_name": endpoint_name, "reason": reason},
    }


class DisabledEventPublisher:
    def __init__(self, kafka: KafkaSettings, flush_timeout: float = 15.0):
        self._kafka = kafka
        self._flush_timeout = flush_timeout
        self._producer: Producer | None = None

    def _producer_now(self) -> Producer:
        if self._producer is None:
            config = {**self._kafka.client_config(), "enable.idempotence": True, "linger.ms": 5}
            self._producer = Producer(config)
        return self._producer

    async def publish(self, account_id: str, endpoint_id: str, endpoint_name: str, reason: str) -> bool:
        """Produces the event and waits for the broker's acknowledgement; False when it was not acked."""
        message = endpoint_disabled_message(account_id, endpoint_id, endpoint_name, reason)
        loop = asyncio.get_running_loop()
        acked: asyncio.Future = loop.create_future()

        def on_delivery(error, _msg) -> None:
            loop.call_soon_threadsafe(lambda: acked.done() or acked.set_result(error))

        try:
            producer = self._producer_now()
            producer.produce(
                self._kafka.topic,
                key=account_id.encode(),
                value=json.dumps(message).encode(),
                on_delivery=on_delivery,
            )
            await asyncio.to_thread(producer.flush, self._flush_timeout)
            error = await asyncio.wait_for(acked, 1.0)
        except (KafkaException, BufferError, asyncio.TimeoutError) as exc:
            error = exc
        if error is not None:
            log.error("endpoint-disabled event not published", endpoint_id=endpoint_id, error=str(error))
            return False
        log.info("endpoint-disabled event published", endpoint_id=endpoint_id, topic=self._kafka.topic)
        return True

    async def close(self) -> None:
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, self._flush_timeout)
            self._producer = None
