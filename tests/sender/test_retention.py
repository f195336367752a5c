"""Retention (issue 9): finished deliveries and their attempts are pruned once they finished longer
ago than the retention, in batches; PENDING ones never; the oldest kept is a gauge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import func, select

from hooks.sender.v1 import deliveries_pb2
from services.common.db import create_engine, upgrade_async
from services.sender.models import Attempt, Delivery
from services.sender.queue_metrics import oldest_finished_seconds
from services.sender.retention import Pruner
from services.sender.server import MIGRATIONS, VERSION_TABLE
from services.sender.store import encode_event
from tests.helpers.sender import (
    create_endpoint,
    deliver,
    get_delivery,
    make_event,
    new_account,
    request_for,
    running_sender,
    wait_for_status,
)
from tests.helpers.waiting import eventually

DAY = timedelta(days=1)


def _delivery(status: str, finished: datetime) -> dict:
    event_id = uuid.uuid4().hex
    return dict(
        id=str(uuid.uuid4()), account_id="acct", endpoint_id="endpoint-1", application="inventory",
        event_id=event_id, event=encode_event({"id": event_id}), traceparent="", status=status,
        attempt_count=1, claimed_by="", last_error="", created_at=finished - timedelta(minutes=1),
        updated_at=finished, next_attempt_at=finished if status == "PENDING" else None,
    )  # fmt: skip


async def test_old_finished_deliveries_and_their_attempts_are_pruned(database_url):
    await upgrade_async(database_url, MIGRATIONS, VERSION_TABLE)
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    old = [_delivery("SUCCEEDED", now - 40 * DAY - i * timedelta(seconds=1)) for i in range(3)]
    old.append(_delivery("FAILED", now - 31 * DAY))
    old_pending = _delivery("PENDING", now - 60 * DAY)
    recent = _delivery("SUCCEEDED", now - 2 * DAY)
    rows = [*old, old_pending, recent]
    attempts = [
        dict(delivery_id=row["id"], number=n, started_at=row["updated_at"], latency_seconds=0.01, http_status=200,
             response_body="", error="", succeeded=True)
        for row in rows for n in (1, 2)
    ]  # fmt: skip
    try:
        async with engine.begin() as connection:
            await connection.execute(Delivery.__table__.insert(), rows)
            await connection.execute(Attempt.__table__.insert(), attempts)
        assert await oldest_finished_seconds(engine, now) == pytest.approx(40 * DAY.total_seconds() + 2, abs=1)

        pruner = Pruner(engine, retention_seconds=30 * DAY.total_seconds(), batch=2, pause_seconds=0)
        assert await pruner.prune(now) == 4  # in batches of 2, until one came back short

        async with engine.connect() as connection:
            kept = set((await connection.execute(select(Delivery.__table__.c.id))).scalars())
            kept_attempts = set((await connection.execute(select(Attempt.__table__.c.delivery_id))).scalars())
            assert (await connection.execute(select(func.count()).select_from(Attempt.__table__))).scalar_one() == 4
        assert kept == {old_pending["id"], recent["id"]}
        assert kept_attempts == kept
        assert await oldest_finished_seconds(engine, now) == pytest.approx(2 * DAY.total_seconds(), abs=1)
        assert await pruner.prune(now) == 0
    finally:
        await engine.dispose()


async def test_a_running_sender_prunes_what_finished_longer_ago_than_the_retention(database_url, registry, receiver):
    account = new_account()
    async with running_sender(
        database_url, registry, sender_retention_seconds=0.5, sender_retention_interval_seconds=0.1
    ) as sender:
        endpoint = await create_endpoint(sender, account, receiver.url("ok"))
        [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
        delivery_id = response.delivery_ids[0]
        await wait_for_status(sender, account, delivery_id, deliveries_pb2.DELIVERY_STATUS_SUCCEEDED)

        async def gone():
            try:
                await get_delivery(sender, account, delivery_id)
            except grpc.aio.AioRpcError as exc:
                return exc.code() == grpc.StatusCode.NOT_FOUND
            return False

        await eventually(gone, timeout=10)
        assert sender.server.pruner.pruned >= 1
