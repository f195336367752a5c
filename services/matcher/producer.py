"""An asyncio face for confluent-kafka's Producer: `await produce(...)` returns once the broker
acknowledged the record (or raises), with librdkafka's callbacks served by a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from services.common.logging import get_logger

log = get_logger(__name__)


#: librdkafka's default `message.max.bytes`: the largest record the producer sends.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000


class AsyncProducer:
    def __init__(self, config: dict[str, str]):
        self._producer = Producer(
            {
                **config,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 30_000,
            }
        )
        #: The largest record this producer sends (its `message.max.bytes`); a broker may take less.
        self.max_message_bytes = int(config.get("message.max.bytes", DEFAULT_MAX_MESSAGE_BYTES))
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="matcher-producer-poll", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)

    async def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes | None]] | None = None,
    ) -> Message:
        """Produces one record and waits for the broker's acknowledgement; raises KafkaException (also
        at once, for a record larger than `max_message_bytes`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            def settle() -> None:
                if future.done():
                    return
                if error is not None:
                    future.set_exception(KafkaException(error))
                else:
                    future.set_result(message)

            loop.call_soon_threadsafe(settle)

        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=None if headers is None else list(headers),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:  # the local queue is full: let it drain
                await asyncio.sleep(0.05)
        return await future

    async def close(self, timeout: float = 10.0) -> None:
        remaining = await asyncio.to_thread(self._producer.flush, timeout)
        if remaining:
            log.warning("producer closed with undelivered records", count=remaining)
        self._stopping.set()
        await asyncio.to_thread(self._thread.join, 5)
