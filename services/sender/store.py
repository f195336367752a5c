"""The durable delivery queue: what the servicer and the workers read and write, one transaction each.

Leases: a sender works on a delivery only while it holds it (`claimed_by` = its id and `claimed_until`
ahead); a sender that dies lets its lease run out, and the delivery becomes due again for any sender.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.common.db import sessionmaker
from services.sender import dialects
from services.sender.models import Attempt, Delivery, DeliveryState, UTCDateTime

# Rows per INSERT statement (SQLite allows 32766 bound parameters; a delivery binds 15).
INSERT_CHUNK = 1000


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NewDelivery:
    account_id: str
    endpoint_id: str
    event_id: str
    event_body: dict
    traceparent: str = ""


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to, and what happens to the delivery next."""

    delivery_id: str
    endpoint_id: str
    number: int
    started_at: datetime
    latency_seconds: float
    http_status: int
    response_body: str
    error: str
    succeeded: bool
    status: DeliveryState
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class PageCursor:
    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.id]).encode()
        return base64.urlsafe_b64encode(raw).decode()

    @classmethod
    def decode(cls, token: str) -> "PageCursor":
        """Raises ValueError on a token this service did not make."""
        try:
            created_at, id_ = json.loads(base64.urlsafe_b64decode(token.encode()))
            parsed = datetime.fromisoformat(created_at)
        except Exception as exc:  # noqa: BLE001 - any garbage is the caller's
            raise ValueError("not a page token of this list") from exc
        if parsed.tzinfo is None or not isinstance(id_, str):
            raise ValueError("not a page token of this list")
        return cls(parsed, id_)


class DeliveryStore:
    def __init__(self, engine: AsyncEngine, sender_id: str, lease_seconds: float):
        self.engine = engine
        self.sessions = sessionmaker(engine)
        self.sender_id = sender_id
        self.lease = timedelta(seconds=lease_seconds)
        self._serializer = dialects.write_serializer(engine)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """A write transaction (serialized within the process where the database needs it)."""
        async with self._serializer, self.sessions.begin() as session:
            yield session

    async def enqueue(self, items: list[NewDelivery]) -> tuple[dict[tuple[str, str], str], list[Delivery]]:
        """Stores the deliveries that do not exist yet, leased to this sender so the poller leaves them
        to the hot path, all in one transaction. Returns the id of each (event id, endpoint id), old or
        new, and the rows created now."""
        now = utcnow()
        fresh: dict[tuple[str, str], dict] = {}
        for item in items:
            key = (item.event_id, item.endpoint_id)
            if key in fresh:
                continue
            fresh[key] = dict(
                id=str(uuid.uuid4()),
                account_id=item.account_id,
                endpoint_id=item.endpoint_id,
                event_id=item.event_id,
                event=json.dumps(item.event_body, separators=(",", ":")),
                traceparent=item.traceparent,
                status=DeliveryState.PENDING.value,
                attempt_count=0,
                next_attempt_at=now,
                first_failure_at=None,
                claimed_until=now + self.lease,
                claimed_by=self.sender_id,
                last_error="",
                created_at=now,
                updated_at=now,
            )
        rows = list(fresh.values())
        async with self._writing() as session:
            for start in range(0, len(rows), INSERT_CHUNK):
                await dialects.insert_ignoring_duplicates(session, Delivery.__table__, rows[start : start + INSERT_CHUNK])
            event_ids = sorted({key[0] for key in fresh})
            stored: dict[tuple[str, str], Delivery] = {}
            for start in range(0, len(event_ids), INSERT_CHUNK):
                result = await session.execute(
                    select(Delivery).where(Delivery.event_id.in_(event_ids[start : start + INSERT_CHUNK]))
                )
                for row in result.scalars():
                    stored[(row.event_id, row.endpoint_id)] = row
        ids = {key: stored[key].id for key in fresh}
        created = [stored[key] for key, row in fresh.items() if stored[key].id == row["id"]]
        return ids, created

    def holds_fresh_lease(self, delivery: Delivery) -> bool:
        """Whether this sender leased the row and more than half of the lease is left."""
        return (
            delivery.status == DeliveryState.PENDING
            and delivery.claimed_by == self.sender_id
            and delivery.claimed_until is not None
            and delivery.claimed_until - utcnow() > self.lease / 2
        )

    async def claim(self, delivery_id: str) -> Delivery | None:
        """Takes (or renews) the lease of a PENDING, due delivery; None when another sender holds it,
        or it is no longer due or pending."""
        now = utcnow()
        async with self._writing() as session:
            result = await session.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.status == DeliveryState.PENDING,
                    Delivery.next_attempt_at <= now,
                    or_(
                        Delivery.claimed_until.is_(None),
                        Delivery.claimed_until < now,
                        Delivery.claimed_by == self.sender_id,
                    ),
                )
                .values(claimed_until=now + self.lease, claimed_by=self.sender_id)
                .returning(Delivery.id)
            )
            if result.scalar_one_or_none() is None:
                return None
            return await session.get(Delivery, delivery_id)

    async def claim_due(self, limit: int) -> list[Delivery]:
        now = utcnow()
        async with self._writing() as session:
            return await dialects.claim_due(session, now, now + self.lease, self.sender_id, limit)

    async def record_attempts(self, results: list[AttemptResult]) -> list[tuple[Delivery, datetime | None]]:
        """Logs attempts and moves their deliveries on, releasing the leases, and keeps the endpoints'
        failure streaks, all in one transaction (the attempt recorder batches what finished together).
        Returns, per result, the delivery and, after a failure, since when its endpoint has failed."""
        now = utcnow()
        table = Delivery.__table__
        moved_on = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                attempt_count=bindparam("b_number"),
                next_attempt_at=bindparam("b_next", type_=UTCDateTime()),
                claimed_until=None,
                claimed_by="",
                last_error=bindparam("b_error"),
                updated_at=bindparam("b_now", type_=UTCDateTime()),
                first_failure_at=func.coalesce(
                    table.c.first_failure_at, bindparam("b_failed_at", type_=UTCDateTime())
                ),
            )
        )
        async with self._writing() as session:
            await session.execute(
                insert(Attempt),
                [
                    dict(
                        delivery_id=r.delivery_id,
                        number=r.number,
                        started_at=r.started_at,
                        latency_seconds=r.latency_seconds,
                        http_status=r.http_status,
                        response_body=r.response_body,
                        error=r.error,
                        succeeded=r.succeeded,
                    )
                    for r in results
                ],
            )
            await session.execute(
                moved_on,
                [
                    dict(
                        b_id=r.delivery_id,
                        b_status=r.status.value,
                        b_number=r.number,
                        b_next=r.next_attempt_at,
                        b_error=r.error,
                        b_now=now,
                        b_failed_at=None if r.succeeded else r.started_at,
                    )
                    for r in results
                ],
            )
            # Each endpoint's streak follows its last outcome in the batch.
            last_outcome = {r.endpoint_id: r.succeeded for r in results}
            recovered = sorted({r.endpoint_id for r in results if r.succeeded})
            if recovered:
                await dialects.end_failure_streaks(session, recovered, now)
            failing = {
                endpoint_id: await dialects.record_failure_streak(session, endpoint_id, now)
                for endpoint_id, succeeded in last_outcome.items()
                if not succeeded
            }
            ids = sorted({r.delivery_id for r in results})
            rows = {
                row.id: row
                for row in (
                    await session.execute(
                        select(Delivery).where(Delivery.id.in_(ids)), execution_options={"populate_existing": True}
                    )
                ).scalars()
            }
        return [(rows[r.delivery_id], None if r.succeeded else failing[r.endpoint_id]) for r in results]

    async def settle(
        self, delivery_id: str, status: DeliveryState, error: str, next_attempt_at: datetime | None = None
    ) -> Delivery | None:
        """Moves a delivery on without an attempt (endpoint deleted or disabled, registry unreachable)."""
        async with self._writing() as session:
            await session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(
                    status=status.value,
                    last_error=error,
                    next_attempt_at=next_attempt_at,
                    claimed_until=None,
                    claimed_by="",
                    updated_at=utcnow(),
                )
            )
            return await session.get(Delivery, delivery_id, populate_existing=True)

    async def get(self, account_id: str, delivery_id: str) -> tuple[Delivery, list[Attempt]] | None:
        async with self.sessions() as session:
            delivery = await session.get(Delivery, delivery_id)
            if delivery is None or delivery.account_id != account_id:
                return None
            attempts = (
                await session.execute(
                    select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.number, Attempt.id)
                )
            ).scalars()
            return delivery, list(attempts)

    async def list(
        self,
        account_id: str,
        page_size: int,
        cursor: PageCursor | None = None,
        endpoint_id: str = "",
        status: DeliveryState | None = None,
        event_id: str = "",
    ) -> tuple[list[Delivery], PageCursor | None]:
        """The account's deliveries, newest first; the cursor of the next page when there is one."""
        query = select(Delivery).where(Delivery.account_id == account_id)
        if endpoint_id:
            query = query.where(Delivery.endpoint_id == endpoint_id)
        if status is not None:
            query = query.where(Delivery.status == status.value)
        if event_id:
            query = query.where(Delivery.event_id == event_id)
        if cursor is not None:
            query = query.where(
                or_(
                    Delivery.created_at < cursor.created_at,
                    and_(Delivery.created_at == cursor.created_at, Delivery.id < cursor.id),
                )
            )
        query = query.order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(page_size + 1)
        async with self.sessions() as session:
            rows = list((await session.execute(query)).scalars())
        if len(rows) > page_size:
            rows = rows[:page_size]
            return rows, PageCursor(rows[-1].created_at, rows[-1].id)
        return rows, None

    async def retry(self, account_id: str, delivery_id: str) -> Delivery | None:
        """Makes the delivery PENDING and due now, leased to this sender for its hot path."""
        now = utcnow()
        async with self._writing() as session:
            delivery = await session.get(Delivery, delivery_id, with_for_update=True)
            if delivery is None or delivery.account_id != account_id:
                return None
            delivery.status = DeliveryState.PENDING.value
            delivery.next_attempt_at = now
            delivery.updated_at = now
            if delivery.claimed_until is None or delivery.claimed_until < now:
                delivery.claimed_until = now + self.lease
                delivery.claimed_by = self.sender_id
        return delivery

    async def release(self, delivery_ids: list[str]) -> None:
        """Gives up this sender's lease on deliveries it will not work on now (the poller or another
        sender takes them)."""
        if not delivery_ids:
            return
        async with self._writing() as session:
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(delivery_ids), Delivery.claimed_by == self.sender_id)
                .values(claimed_until=None, claimed_by="")
            )
