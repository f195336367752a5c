"""The one producer every publisher sends through, against the real broker: a send its caller gave up
on (a PublishMessage whose client's deadline passed, a cancelled task) must leave the producer serving
every later one. It used not to: the abandoned send's delivery report raised in the producer's callback
thread, which died, and every later send of the process (the matcher's PublishMessage for all tenants,
its dead letters) waited for ever."""

from __future__ import annotations

import asyncio

from hooks_client.kafka import RecordProducer


async def test_sends_given_up_by_their_callers_leave_the_producer_working(kafka, topics):
    producer = RecordProducer(bootstrap_servers=kafka.bootstrap_servers)
    try:
        await producer.send(topics["outbox"], b"warm-up")  # connected: what follows is acknowledged quickly
        abandoned = []
        for number in range(20):
            task = asyncio.create_task(producer.send(topics["outbox"], f"abandoned {number}".encode()))
            await asyncio.sleep(0)  # the record is queued: its acknowledgement is still to come
            task.cancel()
            abandoned.append(task)
        await asyncio.gather(*abandoned, return_exceptions=True)
        later = await asyncio.wait_for(producer.send(topics["outbox"], b"later", id="later"), timeout=20)
        assert later.id == "later" and later.offset >= 0
        # The abandoned records were sent all the same (a queued record cannot be called back).
        assert producer.flush(10) == 0
    finally:
        await asyncio.to_thread(producer.close, 10.0)
