"""Where SQLite and PostgreSQL differ for the sender, in one place: idempotent inserts, the failure
streak upsert, and claiming due deliveries (SKIP LOCKED on PostgreSQL; one atomic UPDATE on SQLite,
whose single writer needs nothing more)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.sender.models import Delivery, DeliveryState, EndpointHealth


def _insert(session: AsyncSession, table: Table):
    return (postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert)(table)


async def insert_ignoring_duplicates(session: AsyncSession, table: Table, rows: list[dict]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: rows whose unique key exists already are left as they are."""
    if rows:
        await session.execute(_insert(session, table).on_conflict_do_nothing(), rows)


async def record_failure_streak(session: AsyncSession, endpoint_id: str, now: datetime) -> datetime:
    """Starts the endpoint's failure streak unless one is running; returns when it started."""
    table = EndpointHealth.__table__
    statement = _insert(session, table).values(endpoint_id=endpoint_id, failing_since=now, updated_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.endpoint_id],
        set_={
            "failing_since": func.coalesce(table.c.failing_since, statement.excluded.failing_since),
            "updated_at": statement.excluded.updated_at,
        },
    ).returning(table.c.failing_since)
    return (await session.execute(statement)).scalar_one()


def _due(now: datetime):
    return (
        Delivery.status == DeliveryState.PENDING,
        Delivery.next_attempt_at <= now,
        or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now),
    )


async def claim_due(
    session: AsyncSession, now: datetime, lease_until: datetime, claimer: str, limit: int
) -> list[Delivery]:
    """Leases up to `limit` PENDING deliveries that are due and not leased by anyone, and returns
    them. Call inside a transaction."""
    oldest_first = select(Delivery.id).where(*_due(now)).order_by(Delivery.next_attempt_at).limit(limit)
    if session.bind.dialect.name == "postgresql":
        ids = list((await session.execute(oldest_first.with_for_update(skip_locked=True))).scalars())
        if not ids:
            return []
        statement = update(Delivery).where(Delivery.id.in_(ids))
    else:
        statement = update(Delivery).where(Delivery.id.in_(oldest_first.scalar_subquery()), *_due(now))
    result = await session.execute(
        statement.values(claimed_until=lease_until, claimed_by=claimer).returning(Delivery),
        execution_options={"synchronize_session": False, "populate_existing": True},
    )
    return list(result.scalars())


async def end_failure_streaks(session: AsyncSession, endpoint_ids: list[str], now: datetime) -> None:
    """Successes: these endpoints are not failing any more."""
    await session.execute(
        update(EndpointHealth)
        .where(EndpointHealth.endpoint_id.in_(endpoint_ids), EndpointHealth.failing_since.is_not(None))
        .values(failing_since=None, updated_at=now)
    )


def write_serializer(engine) -> contextlib.AbstractAsyncContextManager:
    """What a write transaction holds: on SQLite, one lock per process, since its single writer
    would otherwise make concurrent writers wait in its busy handler (which sleeps in steps up to
    100 ms); PostgreSQL lets writers run side by side."""
    if engine.dialect.name == "sqlite":
        return _SharedLock()
    return contextlib.nullcontext()


class _SharedLock:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *_exc) -> None:
        self._lock.release()
