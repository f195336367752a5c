"""The sender's outbox: events it must publish to the incoming topic, kept in its own database until
the broker acknowledged them, so that neither a Kafka outage nor a sender dying loses one.

A row is written first (`add`), in the sender's database; a relay task publishes every row that is
available (`available_at` passed) and deletes it once the broker acknowledged it. A row that could not
be published becomes available again after a growing backoff. Any sender sharing the database may
take a row: taking it moves `available_at` ahead (compare-and-set on its old value), so two relays do
not publish one row at once; were they to, the event's fixed id makes the second a duplicate the
sender's idempotency key drops.

A row may be written `confirmed=False` with a later `available_at`: the side effect it announces is
still being carried out (the registry asked to disable the endpoint). `confirm` makes it available at
once, `drop` removes it; a row left unconfirmed (its sender died in between, or the registry did not
answer) is taken when it comes available, and the relay first calls `complete` for it (which says
whether to publish it or drop it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import RowMapping, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hooks_client.kafka import RecordProducer
from services.common.background import PeriodicTask
from services.common.db import utcnow
from services.common.logging import get_logger
from services.common.settings import KafkaSettings
from services.sender.models import OutboxEvent

log = get_logger(__name__)

#: Rows one relay pass takes.
BATCH = 50
#: The first retry's backoff after a failed publish; it doubles up to MAX_BACKOFF_SECONDS.
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True)
class OutboxRow:
    id: int
    event_id: str
    account_id: str
    endpoint_id: str
    reason: str
    payload: str
    confirmed: bool
    attempts: int


#: Carries out an unconfirmed row's side effect: True to publish the row, False to drop it.
Completer = Callable[[OutboxRow], Awaitable[bool]]


class Outbox:
    """The outbox table and its relay. `complete` carries out an unconfirmed row's side effect
    before it is published (it raises when that fails: the row is retried later).
    `poll_interval_seconds`: how often the relay looks for rows other senders left or that came due
    (a row added here wakes it at once)."""

    def __init__(
        self,
        engine: AsyncEngine,
        kafka: KafkaSettings,
        complete: Completer | None = None,
        poll_interval_seconds: float = 5.0,
        delivery_timeout_seconds: float = 10.0,
    ):
        self.engine = engine
        self.kafka = kafka
        self.complete = complete
        self.delivery_timeout = delivery_timeout_seconds
        self._producer: RecordProducer | None = None
        self._wake = asyncio.Event()
        # A pass that found rows is followed by the next at once; the database may be briefly away.
        self._relay = PeriodicTask(
            "sender-outbox-relay", self.relay_once, poll_interval_seconds, "outbox relay pass failed", log, self._wake
        )
        #: Events the broker acknowledged (tests and metrics read it).
        self.published = 0

    async def add(
        self,
        *,
        event_id: str,
        account_id: str,
        endpoint_id: str,
        reason: str,
        payload: bytes,
        confirmed: bool = True,
        available_in_seconds: float = 0.0,
    ) -> int:
        """Stores one event to publish; returns its row id."""
        now = utcnow()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                insert(OutboxEvent.__table__).values(
                    event_id=event_id,
                    account_id=account_id,
                    endpoint_id=endpoint_id,
                    reason=reason,
                    payload=payload.decode(),
                    confirmed=confirmed,
                    attempts=0,
                    last_error="",
                    available_at=now + timedelta(seconds=available_in_seconds),
                    created_at=now,
                )
            )
            key = result.inserted_primary_key
            assert key is not None  # set by a single-row insert
            row_id = key[0]
        if confirmed and available_in_seconds <= 0:
            self._wake.set()
        return row_id

    async def confirm(self, row_id: int) -> None:
        """The row's side effect is done: publish it now."""
        table = OutboxEvent.__table__
        async with self.engine.begin() as connection:
            await connection.execute(
                update(table).where(table.c.id == row_id).values(confirmed=True, available_at=utcnow())
            )
        self._wake.set()

    async def drop(self, row_id: int) -> None:
        """The row is not to be published."""
        table = OutboxEvent.__table__
        async with self.engine.begin() as connection:
            await connection.execute(delete(table).where(table.c.id == row_id))

    async def pending(self) -> list[OutboxRow]:
        """Every row not yet published (tests and tools)."""
        table = OutboxEvent.__table__
        async with self.engine.connect() as connection:
            rows = (await connection.execute(select(table).order_by(table.c.id))).mappings().all()
        return [_row(row) for row in rows]

    def start(self) -> Outbox:
        self._relay.start()
        return self

    async def close(self) -> None:
        await self._relay.close()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await asyncio.to_thread(producer.close, 1.0)

    async def _take(self) -> list[OutboxRow]:
        """Rows available now, each moved out of other relays' reach for as long as a publish may take."""
        table = OutboxEvent.__table__
        now = utcnow()
        async with self.engine.connect() as connection:
            rows = (
                (
                    await connection.execute(
                        select(table).where(table.c.available_at <= now).order_by(table.c.available_at).limit(BATCH)
                    )
                )
                .mappings()
                .all()
            )
        taken = []
        hold = now + timedelta(seconds=self.delivery_timeout * 3 + 30)
        async with self.engine.begin() as connection:
            for row in rows:
                result = await connection.execute(
                    update(table)
                    .where(table.c.id == row["id"], table.c.available_at == row["available_at"])
                    .values(available_at=hold, attempts=table.c.attempts + 1)
                )
                if result.rowcount == 1:
                    taken.append(_row(row))
        return taken

    async def relay_once(self) -> bool:
        """Publishes what is available; True when it found rows (there may be more)."""
        rows = await self._take()
        if not rows:
            return False
        ready: list[OutboxRow] = []
        for row in rows:
            if not row.confirmed and self.complete is not None:
                try:
                    publish = await self.complete(row)
                except Exception as exc:  # noqa: BLE001 - e.g. the registry is unreachable: later
                    await self._retry_later(row, f"cannot complete: {exc}")
                    continue
                if not publish:
                    await self.drop(row.id)
                    continue
            ready.append(row)
        producer = self._producer_now()
        futures = []
        for row in ready:
            try:
                futures.append(
                    asyncio.wrap_future(
                        producer.produce(
                            self.kafka.topic, row.payload.encode(), key=row.account_id.encode(), id=row.event_id
                        )
                    )
                )
            except Exception as exc:  # noqa: BLE001 - refused by the producer: retried later
                futures.append(_failed(exc))
        for row, future in zip(ready, futures, strict=True):
            try:
                await future
            except Exception as exc:  # noqa: BLE001 - not acknowledged: kept and retried
                await self._retry_later(row, str(exc))
                log.warning("outbox event not published yet", event_id=row.event_id, error=str(exc))
                continue
            table = OutboxEvent.__table__
            async with self.engine.begin() as connection:
                await connection.execute(delete(table).where(table.c.id == row.id))
            self.published += 1
            log.info(
                "outbox event published", event_id=row.event_id, endpoint_id=row.endpoint_id, topic=self.kafka.topic
            )
        return True

    async def _retry_later(self, row: OutboxRow, error: str) -> None:
        backoff = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** max(0, row.attempts))
        table = OutboxEvent.__table__
        async with self.engine.begin() as connection:
            await connection.execute(
                update(table)
                .where(table.c.id == row.id)
                .values(available_at=utcnow() + timedelta(seconds=backoff), last_error=error[:1000])
            )

    def _producer_now(self) -> RecordProducer:
        if self._producer is None:
            config = self.kafka.client_config()
            bootstrap = config.pop("bootstrap.servers")
            self._producer = RecordProducer(
                bootstrap_servers=bootstrap, config=config, delivery_timeout=self.delivery_timeout
            )
        return self._producer


def _failed(exc: Exception) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


def _row(row: RowMapping) -> OutboxRow:
    return OutboxRow(
        id=row["id"],
        event_id=row["event_id"],
        account_id=row["account_id"],
        endpoint_id=row["endpoint_id"],
        reason=row["reason"],
        payload=row["payload"],
        confirmed=bool(row["confirmed"]),
        attempts=row["attempts"],
    )
