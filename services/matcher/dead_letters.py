"""Dead-lettering: the original record on the DLQ topic with where it came from and why, as headers in
the way Kafka Connect's DeadLetterQueueReporter writes them.

The record goes untouched while it fits. When the broker (or the producer's own `message.max.bytes`)
refuses it as too large, which is permanent for that record, it is produced again cut down to what
fits: its value cut to the producer's limit less everything else, then halved for as long as it is
still refused, then without the original record's own headers, then without its key (a producer's
key may itself fill the limit). A cut record says so in HEADER_TRUNCATED and gives the original
value's size in HEADER_ORIGINAL_BYTES (and a dropped key's in HEADER_ORIGINAL_KEY_BYTES); the origin
and reason headers, bounded, are always there, so the last cut always fits. Any other produce failure (the broker unreachable...) is retried until
the broker takes the record: a message is never dropped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from confluent_kafka import KafkaError, Message

from hooks_client.kafka import PublishError, RecordProducer
from services.common.backoff import backoff_delays
from services.common.kafka_messages import headers_of, position_of
from services.common.logging import get_logger
from services.matcher.validation import Rejected

log = get_logger(__name__)

HEADER_TOPIC = "hooks.error.topic"
HEADER_PARTITION = "hooks.error.partition"
HEADER_OFFSET = "hooks.error.offset"
HEADER_REASON = "hooks.error.reason"
HEADER_MESSAGE = "hooks.error.message"
#: "true" when the value (and maybe the record's own headers) was cut for the record to fit.
HEADER_TRUNCATED = "hooks.error.truncated"
#: The size in bytes of the original value, on a truncated record.
HEADER_ORIGINAL_BYTES = "hooks.error.original.bytes"
#: The size in bytes of the original key, on a record produced without it.
HEADER_ORIGINAL_KEY_BYTES = "hooks.error.original.key.bytes"

#: Longest description (characters) in HEADER_MESSAGE.
MAX_DESCRIPTION_CHARS = 1000
#: What a record costs besides its key, value and headers, rounded up (record and batch framing).
RECORD_OVERHEAD_BYTES = 512

#: Produce errors that say the record is too large (the producer raises MSG_SIZE_TOO_LARGE at once for
#: its own limit, the broker answers it for its own): permanent for that record, so it is cut.
TOO_LARGE_ERRORS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})


def error_headers(message: Message, rejected: Rejected) -> list[tuple[str, bytes]]:
    """Ours: where the record came from and why it is dead-lettered."""
    description = rejected.description
    if len(description) > MAX_DESCRIPTION_CHARS:
        description = description[: MAX_DESCRIPTION_CHARS - 1] + "…"
    topic, partition, offset = position_of(message)
    return [
        (HEADER_TOPIC, topic.encode()),
        (HEADER_PARTITION, str(partition).encode()),
        (HEADER_OFFSET, str(offset).encode()),
        (HEADER_REASON, rejected.reason.encode()),
        (HEADER_MESSAGE, description.encode()),
    ]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The record to produce: the original value, key and headers, and ours."""

    value: bytes | None
    key: bytes | None
    #: A header's value is None when the record carries it as null.
    own_headers: tuple[tuple[str, bytes | None], ...]
    error_headers: tuple[tuple[str, bytes], ...]
    #: The size of the original value when it was cut, else None.
    original_bytes: int | None = None
    #: The size of the original key when it was dropped, else None.
    original_key_bytes: int | None = None

    @classmethod
    def of(cls, message: Message, rejected: Rejected) -> DeadLetter:
        return cls(message.value(), message.key(), tuple(headers_of(message)), tuple(error_headers(message, rejected)))

    @property
    def headers(self) -> list[tuple[str, bytes | None]]:
        """The record's own headers, then ours."""
        headers: list[tuple[str, bytes | None]] = [*self.own_headers, *self.error_headers]
        if self.original_bytes is not None:
            headers += [(HEADER_TRUNCATED, b"true"), (HEADER_ORIGINAL_BYTES, str(self.original_bytes).encode())]
        if self.original_key_bytes is not None:
            headers.append((HEADER_ORIGINAL_KEY_BYTES, str(self.original_key_bytes).encode()))
        return headers

    def smaller(self, max_bytes: int) -> DeadLetter | None:
        """The next cut after a too-large refusal (see the module), or None when nothing is left to cut."""
        value = self.value or b""
        original = self.original_bytes if self.original_bytes is not None else len(value)
        if self.original_bytes is None:
            # First cut: to the producer's limit less all the rest (our truncation headers included).
            rest = RECORD_OVERHEAD_BYTES + len(self.key or b"") + 64
            rest += sum(len(name) + len(data or b"") for name, data in self.headers)
            keep = max(0, min(len(value) - 1, max_bytes - rest))
        elif value:
            keep = len(value) // 2
        elif self.own_headers:
            return replace(self, own_headers=())
        elif self.key:
            return replace(self, key=None, original_key_bytes=len(self.key))
        else:
            return None
        return replace(self, value=value[:keep], original_bytes=original)


class DeadLetters:
    def __init__(self, producer: RecordProducer, topic: str, max_backoff: float = 5.0):
        self._producer = producer
        self._topic = topic
        self._max_backoff = max_backoff

    async def send(self, message: Message, rejected: Rejected) -> None:
        """Returns once the DLQ record is acknowledged by the broker (cut down if it must be); retries
        other failures until it is."""
        record = DeadLetter.of(message, rejected)
        delays = backoff_delays(maximum=self._max_backoff)
        while True:
            try:
                await self._producer.send(self._topic, record.value, key=record.key, headers=record.headers)
                break
            except PublishError as exc:
                if exc.error is not None and exc.error.code() in TOO_LARGE_ERRORS:
                    smaller = record.smaller(self._producer.max_message_bytes)
                    if smaller is not None:
                        log.warning(
                            "dead letter too large; producing it cut down",
                            topic=self._topic,
                            error=str(exc),
                            value_bytes=len(smaller.value or b""),
                            original_bytes=smaller.original_bytes,
                        )
                        record = smaller
                        continue
                delay = next(delays)
                log.warning(
                    "dead-letter produce failed; retrying", topic=self._topic, error=str(exc), retry_in=round(delay, 2)
                )
                await asyncio.sleep(delay)
        log.warning(
            "message dead-lettered",
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            reason=rejected.reason,
            description=rejected.description,
            truncated=record.original_bytes is not None,
        )
