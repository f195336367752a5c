"""Dead-lettering: the original record, untouched, on the DLQ topic with where it came from and why,
as headers in the way Kafka Connect's DeadLetterQueueReporter writes them."""

from __future__ import annotations

import asyncio

from confluent_kafka import KafkaException, Message

from services.common.logging import get_logger
from services.matcher.producer import AsyncProducer
from services.matcher.routes import backoff_delays
from services.matcher.validation import Rejected

log = get_logger(__name__)

HEADER_TOPIC = "hooks.error.topic"
HEADER_PARTITION = "hooks.error.partition"
HEADER_OFFSET = "hooks.error.offset"
HEADER_REASON = "hooks.error.reason"
HEADER_MESSAGE = "hooks.error.message"


def error_headers(message: Message, rejected: Rejected) -> list[tuple[str, bytes]]:
    """The record's own headers, then ours."""
    headers = list(message.headers() or [])
    headers += [
        (HEADER_TOPIC, message.topic().encode()),
        (HEADER_PARTITION, str(message.partition()).encode()),
        (HEADER_OFFSET, str(message.offset()).encode()),
        (HEADER_REASON, rejected.reason.encode()),
        (HEADER_MESSAGE, rejected.description.encode()),
    ]
    return headers


class DeadLetters:
    def __init__(self, producer: AsyncProducer, topic: str, max_backoff: float = 5.0):
        self._producer = producer
        self._topic = topic
        self._max_backoff = max_backoff

    async def send(self, message: Message, rejected: Rejected) -> None:
        """Returns once the DLQ record is acknowledged by the broker; retries until it is."""
        headers = error_headers(message, rejected)
        delays = backoff_delays(maximum=self._max_backoff)
        while True:
            try:
                await self._producer.produce(self._topic, message.value(), key=message.key(), headers=headers)
                break
            except KafkaException as exc:
                delay = next(delays)
                log.warning("dead-letter produce failed; retrying", topic=self._topic, error=str(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay)
        log.warning(
            "message dead-lettered",
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            reason=rejected.reason,
            description=rejected.description,
        )
