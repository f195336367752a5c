"""How deep the delivery queue is, sampled from the sender's database for Prometheus.

Two gauges, what an operator alerts on when deliveries pile up:

- hooks_sender_queue_depth: deliveries PENDING (due now or scheduled for a retry), of every sender
  replica (the queue is shared);
- hooks_sender_oldest_due_seconds: how long the oldest delivery that is due has been waiting
  (0 when none is due). It grows when workers cannot keep up or nothing polls the queue;
- hooks_sender_oldest_finished_seconds: how long ago the oldest finished delivery still kept
  finished (0 when none is kept): near the retention (services/sender/retention.py) while the
  pruner keeps up, above it when it does not.

A Prometheus scrape runs in the metrics listener's thread and cannot await the async engine, so the
figures are sampled by a task every `interval` seconds (one cheap aggregate query on the
(status, next_attempt_at) index, and one per finished status on (status, updated_at)) and a scrape
reads the last sample. Every replica reports the same
shared figures: aggregate them with max(), not sum().
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.background import PeriodicTask
from services.common.logging import get_logger
from services.sender.models import Delivery, DeliveryState
from services.sender.retention import FINISHED

log = get_logger(__name__)

#: Seconds between two samples.
SAMPLE_INTERVAL_SECONDS = 10.0

QUEUE_DEPTH = Gauge("hooks_sender_queue_depth", "Deliveries PENDING in the shared queue (due or waiting for a retry).")
OLDEST_DUE_SECONDS = Gauge(
    "hooks_sender_oldest_due_seconds", "Seconds the oldest due PENDING delivery has been waiting (0: none is due)."
)
OLDEST_FINISHED_SECONDS = Gauge(
    "hooks_sender_oldest_finished_seconds",
    "Seconds since the oldest finished delivery still kept finished (0: none is kept); retention prunes it next.",
)


async def sample_queue(engine: AsyncEngine, now: datetime | None = None) -> tuple[int, float]:
    """(PENDING deliveries, seconds the oldest due one has waited) as the database says now."""
    now = now or datetime.now(UTC)
    table = Delivery.__table__
    pending = table.c.status == DeliveryState.PENDING.value
    async with engine.connect() as connection:
        depth = (await connection.execute(select(func.count()).select_from(table).where(pending))).scalar_one()
        oldest = (
            await connection.execute(
                select(func.min(table.c.next_attempt_at)).where(pending, table.c.next_attempt_at <= now)
            )
        ).scalar_one_or_none()
    waited = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return int(depth), waited


async def oldest_finished_seconds(engine: AsyncEngine, now: datetime | None = None) -> float:
    """How long ago the oldest finished delivery still kept finished (0.0 when none is kept)."""
    now = now or datetime.now(UTC)
    table = Delivery.__table__
    oldest = None
    async with engine.connect() as connection:
        for status in FINISHED:  # min() of one index range each
            at = (
                await connection.execute(select(func.min(table.c.updated_at)).where(table.c.status == status))
            ).scalar_one_or_none()
            if at is not None and (oldest is None or at < oldest):
                oldest = at
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0


class QueueSampler:
    """Samples the queue into the gauges every `interval` seconds until closed."""

    def __init__(self, engine: AsyncEngine, interval: float = SAMPLE_INTERVAL_SECONDS):
        self.engine = engine
        # The database may be briefly away: the gauges keep the last figures.
        self._loop = PeriodicTask("sender-queue-sampler", self.sample, interval, "queue sample failed", log)
        #: Samples taken so far (tests wait on it).
        self.samples = 0

    def start(self) -> QueueSampler:
        self._loop.start()
        return self

    async def sample(self) -> None:
        depth, waited = await sample_queue(self.engine)
        QUEUE_DEPTH.set(depth)
        OLDEST_DUE_SECONDS.set(waited)
        OLDEST_FINISHED_SECONDS.set(await oldest_finished_seconds(self.engine))
        self.samples += 1

    async def close(self) -> None:
        await self._loop.close()


def start_queue_sampler(
    engine: AsyncEngine, interval: float = SAMPLE_INTERVAL_SECONDS
) -> Callable[[], Awaitable[None]]:
    """Starts sampling now; returns the hook that stops it (an on_stop hook of the server, placed
    before the engine is disposed)."""
    return QueueSampler(engine, interval).start().close
