"""Reading what landed on a topic, the way any consumer would: a fresh group, from the beginning."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message

from tests.helpers.groups import SESSION_TIMEOUT_MS


def first_record(bootstrap: str, topic: str, timeout: float = 30.0) -> Message:
    """The first record on `topic` (a consumer group of its own, from the earliest offset); fails the
    test when none arrives within `timeout` seconds. Blocking: call it with asyncio.to_thread."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "log_level": 0,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return message
        raise AssertionError(f"nothing arrived on {topic} within {timeout} s")
    finally:
        consumer.close()
