"""At ordinary load a lone message is not held back for a batch to fill (issue 9): the consumer waits
for the first message of a batch only, and the broker may hold an empty fetch only briefly."""

from __future__ import annotations

import asyncio
import time
import uuid

from confluent_kafka import Consumer, Producer

from services.common.settings import KafkaSettings
from services.matcher.consumer import OutboxConsumer, consumer_config
from services.matcher.settings import MatcherSettings
from tests.helpers.groups import SESSION_TIMEOUT_MS


def _assigned(consumer: Consumer, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not consumer.assignment():
        assert time.monotonic() < deadline, "no partitions assigned"
        assert consumer.consume(1, 0.2) == []  # the topic is empty yet


async def test_a_lone_message_is_returned_without_waiting_for_a_batch(kafka, topics):
    settings = MatcherSettings(
        matcher_group_id=f"latency-{uuid.uuid4().hex[:8]}", matcher_session_timeout_ms=SESSION_TIMEOUT_MS
    )
    kafka_settings = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, topic=topics["outbox"])
    config = consumer_config(settings, kafka_settings)
    assert config["fetch.wait.max.ms"] == settings.matcher_fetch_wait_max_ms == 10
    outbox = OutboxConsumer(settings, kafka_settings, routes=None, senders=None, dead_letters=None, schemas=None)
    consumer = Consumer(config)
    try:
        consumer.subscribe([topics["outbox"]])
        await asyncio.to_thread(_assigned, consumer)
        producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
        producer.produce(topics["outbox"], b'{"lone": true}')
        assert producer.flush(10) == 0

        started = time.monotonic()
        messages = await asyncio.to_thread(outbox._consume, consumer, 500, 10.0)
        waited = time.monotonic() - started
        assert [m.value() for m in messages] == [b'{"lone": true}']
        # librdkafka's consume(500, 10.0) would have waited the 10 s out for 499 more.
        assert waited < 3.0
    finally:
        consumer.close()
