"""The sender's queue depth and the age of its oldest due delivery, read from its database (SQLite and
PostgreSQL) into hooks_sender_queue_depth and hooks_sender_oldest_due_seconds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from sqlalchemy import delete, insert

from services.common.db import create_engine, upgrade_async
from services.sender.models import Delivery, DeliveryState
from services.sender.queue_metrics import QueueSampler
from services.sender.server import MIGRATIONS, VERSION_TABLE
from tests.helpers.waiting import eventually


def row(status: DeliveryState, due: datetime | None) -> dict:
    now = datetime.now(UTC)
    return dict(
        id=str(uuid.uuid4()), account_id="a", endpoint_id="e", application="app", event_id=uuid.uuid4().hex, event="{}",
        traceparent="", status=status.value, attempt_count=0, next_attempt_at=due, claimed_by="",
        last_error="", created_at=now, updated_at=now,
    )  # fmt: skip


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


async def test_queue_depth_counts_pending_deliveries_and_the_oldest_due_one_says_how_long_it_waited(database_url):
    await upgrade_async(database_url, MIGRATIONS, VERSION_TABLE)
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(Delivery.__table__),
                [
                    row(DeliveryState.PENDING, now - timedelta(seconds=90)),  # due for 90 s: the oldest
                    row(DeliveryState.PENDING, now - timedelta(seconds=5)),
                    row(DeliveryState.PENDING, now + timedelta(hours=1)),  # a retry, not due yet
                    row(DeliveryState.SUCCEEDED, now - timedelta(hours=2)),  # done: not in the queue
                    row(DeliveryState.FAILED, now - timedelta(hours=3)),
                ],
            )
        sampler = QueueSampler(engine, interval=0.05).start()
        try:
            await eventually(lambda: sampler.samples >= 1, message="a sample")
            assert gauge("hooks_sender_queue_depth") == 3
            assert 90 <= gauge("hooks_sender_oldest_due_seconds") < 150

            # Nothing due any more (only the future retry): the age is 0, the depth 1.
            async with engine.begin() as connection:
                await connection.execute(
                    delete(Delivery.__table__).where(Delivery.__table__.c.next_attempt_at < now + timedelta(minutes=1))
                )
            taken = sampler.samples
            await eventually(lambda: sampler.samples > taken + 1, message="a new sample")
            assert gauge("hooks_sender_queue_depth") == 1
            assert gauge("hooks_sender_oldest_due_seconds") == 0
        finally:
            await sampler.close()
    finally:
        await engine.dispose()
