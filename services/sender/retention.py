"""Retention: finished deliveries (SUCCEEDED or FAILED) and their attempts are deleted once they
finished longer ago than the retention, so that the cost of a delivery does not grow with the history
behind it.

The default retention (HOOKS_SENDER_RETENTION_SECONDS) is 30 days: peers keep 7 to 90 days, and a
month covers what a retention is for here (an account looking into last week's failures with
ListDeliveries, an operator retrying an incident's deliveries with RetryDelivery weeks later), while keeping a
busy sender's database to a month of history (at 100 deliveries/s, about 260 million rows: size the
database for it, or shorten it).

A pruner task per sender deletes in small batches (the oldest first, found on the
(status, updated_at) index), one short transaction each with a pause between, so the hot path's writes
never wait long behind it; it goes on while batches come back full, then rests until the next pass.
Replicas sharing a database may prune at once: a row is deleted by one of them, the other's DELETE
finds nothing. A PENDING delivery is never pruned, however old.

The oldest finished delivery kept is the gauge hooks_sender_oldest_finished_seconds (how long ago it
finished, sampled with the queue's gauges in services/sender/queue_metrics.py): it stays near the
retention when the pruner keeps up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.background import PeriodicTask
from services.common.logging import get_logger
from services.sender.models import Attempt, Delivery, DeliveryState

log = get_logger(__name__)

FINISHED = (DeliveryState.SUCCEEDED.value, DeliveryState.FAILED.value)


async def prune_batch(engine: AsyncEngine, finished_before: datetime, batch: int) -> int:
    """Deletes up to `batch` deliveries finished before `finished_before`, each status's oldest first,
    with their attempts; returns how many deliveries went."""
    deliveries = Delivery.__table__
    attempts = Attempt.__table__
    async with engine.begin() as connection:
        ids: list[str] = []
        for status in FINISHED:  # one index range per status: (status, updated_at)
            rows = await connection.execute(
                select(deliveries.c.id)
                .where(deliveries.c.status == status, deliveries.c.updated_at < finished_before)
                .order_by(deliveries.c.updated_at)
                .limit(batch - len(ids))
            )
            ids.extend(rows.scalars())
            if len(ids) >= batch:
                break
        if not ids:
            return 0
        await connection.execute(delete(attempts).where(attempts.c.delivery_id.in_(ids)))
        result = await connection.execute(
            delete(deliveries).where(deliveries.c.id.in_(ids), deliveries.c.status.in_(FINISHED))
        )
        return result.rowcount


class Pruner:
    """Prunes every `interval` seconds: batches of `batch` with `pause` seconds between them."""

    def __init__(
        self,
        engine: AsyncEngine,
        retention_seconds: float,
        interval_seconds: float = 60.0,
        batch: int = 500,
        pause_seconds: float = 0.05,
    ):
        self.engine = engine
        self.retention = timedelta(seconds=retention_seconds)
        self.batch = max(1, batch)
        self.pause = pause_seconds
        # The database may be briefly away: the next pass tries again.
        self._loop = PeriodicTask(
            "sender-retention", self._prune_and_log, interval_seconds, "pruning finished deliveries failed", log
        )
        #: Deliveries pruned since start (tests and benchmarks read it).
        self.pruned = 0

    async def prune(self, now: datetime | None = None) -> int:
        """One pass: batches until one comes back short; returns how many deliveries went."""
        before = (now or datetime.now(UTC)) - self.retention
        total = 0
        while True:
            count = await prune_batch(self.engine, before, self.batch)
            total += count
            self.pruned += count
            if count < self.batch:
                return total
            await asyncio.sleep(self.pause)

    async def _prune_and_log(self) -> None:
        count = await self.prune()
        if count:
            log.info("finished deliveries pruned", deliveries=count, retention_seconds=self.retention.total_seconds())

    def start(self) -> Pruner:
        self._loop.start()
        return self

    async def close(self) -> None:
        await self._loop.close()


def start_pruner(
    engine: AsyncEngine, retention_seconds: float, interval_seconds: float, batch: int
) -> tuple[Pruner, Callable[[], Awaitable[None]]]:
    """Starts pruning now; returns the pruner and the hook that stops it (an on_stop hook of the
    server, placed before the engine is disposed)."""
    pruner = Pruner(engine, retention_seconds, interval_seconds, batch).start()
    return pruner, pruner.close
