"""Where SQLite and PostgreSQL differ for the sender, in one place: idempotent inserts, lists of ids,
the failure streak upsert, claiming due deliveries per endpoint (SKIP LOCKED on PostgreSQL; one atomic
UPDATE on SQLite, whose single writer needs nothing more), renewing leases, and the hot path's bulk
statements. All take a Core connection inside a transaction.

The hot path's bulk statements (storing deliveries, recording outcomes) run on SQLite as plain
`executemany` of fixed SQL on the driver, with the datetimes formatted here the way `UTCDateTime`
stores them: SQLAlchemy's per-value bind processing would cost more than SQLite's own work. On
PostgreSQL they are Core statements (asyncpg takes the values as they are)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import ARRAY, String, Table, any_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.sender.models import Attempt, Delivery, DeliveryState, EndpointHealth, UTCDateTime


def _is_postgresql(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql"


def _insert(connection: AsyncConnection, table: Table):
    return (postgresql.insert if _is_postgresql(connection) else sqlite.insert)(table)


def in_list(connection: AsyncConnection, column, values: Sequence[str]):
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, one statement text whatever the
    number of values (so asyncpg prepares it once, not once per list length)."""
    if _is_postgresql(connection):
        return column == any_(bindparam(None, list(values), type_=ARRAY(String), unique=True))
    return column.in_(list(values))


async def insert_ignoring_duplicates(connection: AsyncConnection, table: Table, rows: list[dict]) -> set[str]:
    """INSERT ... ON CONFLICT DO NOTHING: rows whose unique key exists already are left as they are.
    Returns the ids of the rows inserted."""
    if not rows:
        return set()
    statement = _insert(connection, table).on_conflict_do_nothing().returning(table.c.id)
    return set((await connection.execute(statement, rows)).scalars())


def sqlite_time(value: datetime | None) -> str | None:
    """A datetime as UTCDateTime stores it on SQLite: naive UTC text in SQLAlchemy's DATETIME
    storage format (always with microseconds, so that text order is time order)."""
    if value is None:
        return None
    if value is _last_time[0]:  # a batch's rows share their `now`
        return _last_time[1]
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    _last_time[:] = [value, text]
    return text


_last_time: list = [None, None]


_DELIVERY_TIMES = frozenset({"next_attempt_at", "first_failure_at", "claimed_until", "created_at", "updated_at"})


async def insert_deliveries(connection: AsyncConnection, rows: list[dict]) -> set[str] | None:
    """Stores the deliveries (dicts with the same keys, in the same order) whose (event id,
    application, endpoint id) is not stored yet, in one statement; returns the ids of those stored
    now, or None when some were not and the driver cannot say which (the caller then looks)."""
    if not rows:
        return set()
    table = Delivery.__table__
    if _is_postgresql(connection):
        return await insert_ignoring_duplicates(connection, table, rows)
    columns = list(rows[0])
    times = [column in _DELIVERY_TIMES for column in columns]
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        "ON CONFLICT DO NOTHING"
    )
    params = [
        tuple(sqlite_time(value) if is_time else value for value, is_time in zip(row.values(), times, strict=True))
        for row in rows
    ]
    result = await connection.exec_driver_sql(sql, params)
    return {row["id"] for row in rows} if result.rowcount == len(rows) else None


#: The order of the values record_outcomes takes.
ATTEMPT_COLUMNS = (
    "delivery_id", "number", "started_at", "latency_seconds", "http_status", "response_body", "error", "succeeded",
)  # fmt: skip
OUTCOME_COLUMNS = ("status", "number", "next_attempt_at", "error", "now", "failed_at", "id", "owner", "generation")

_SQLITE_ATTEMPT = (
    f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})"
)
#: Fenced on the lease: only the owner of the generation the attempt was made under writes its outcome.
_SQLITE_OUTCOME = (
    "UPDATE deliveries SET status = ?, attempt_count = ?, next_attempt_at = ?, claimed_until = NULL,"
    " claimed_by = '', last_error = ?, updated_at = ?, first_failure_at = coalesce(first_failure_at, ?)"
    " WHERE id = ? AND claimed_by = ? AND lease_generation = ?"
)


def _outcome_statement():
    table = Delivery.__table__
    return (
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            table.c.claimed_by == bindparam("b_owner"),
            table.c.lease_generation == bindparam("b_generation"),
        )
        .values(
            status=bindparam("b_status"),
            attempt_count=bindparam("b_number"),
            next_attempt_at=bindparam("b_next", type_=UTCDateTime()),
            claimed_until=None,
            claimed_by="",
            last_error=bindparam("b_error"),
            updated_at=bindparam("b_now", type_=UTCDateTime()),
            first_failure_at=func.coalesce(table.c.first_failure_at, bindparam("b_failed_at", type_=UTCDateTime())),
        )
    )


_OUTCOME = _outcome_statement()


async def record_outcomes(connection: AsyncConnection, attempts: list[tuple], outcomes: list[tuple]) -> None:
    """Bulk INSERT of attempts (values in ATTEMPT_COLUMNS order: an attempt that was made is logged
    whoever holds the lease now) and bulk UPDATE of their deliveries (OUTCOME_COLUMNS order),
    releasing the leases; the UPDATE is fenced on the lease (owner and generation), so a sender that
    lost a delivery's lease leaves the new owner's state as it is."""
    if _is_postgresql(connection):
        await connection.execute(
            insert(Attempt.__table__), [dict(zip(ATTEMPT_COLUMNS, a, strict=True)) for a in attempts]
        )
        await connection.execute(
            _OUTCOME,
            [
                dict(b_status=s, b_number=n, b_next=next_, b_error=e, b_now=now, b_failed_at=failed, b_id=id_,
                     b_owner=owner, b_generation=generation)
                for s, n, next_, e, now, failed, id_, owner, generation in outcomes
            ],
        )  # fmt: skip
        return
    await connection.exec_driver_sql(
        _SQLITE_ATTEMPT,
        [(d, n, sqlite_time(started), latency, status, body, error, succeeded)
         for d, n, started, latency, status, body, error, succeeded in attempts],
    )  # fmt: skip
    await connection.exec_driver_sql(
        _SQLITE_OUTCOME,
        [(s, n, sqlite_time(next_), e, sqlite_time(now), sqlite_time(failed), id_, owner, generation)
         for s, n, next_, e, now, failed, id_, owner, generation in outcomes],
    )  # fmt: skip


async def record_failure_streak(connection: AsyncConnection, endpoint_id: str, now: datetime) -> datetime:
    """Starts the endpoint's failure streak unless one is running; returns when it started."""
    table = EndpointHealth.__table__
    statement = _insert(connection, table).values(endpoint_id=endpoint_id, failing_since=now, updated_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.endpoint_id],
        set_={
            "failing_since": func.coalesce(table.c.failing_since, statement.excluded.failing_since),
            "updated_at": statement.excluded.updated_at,
        },
    ).returning(table.c.failing_since)
    return (await connection.execute(statement)).scalar_one()


def due(now: datetime, claimer: str | None = None):
    """PENDING, due, and leased by nobody (or by `claimer`, which may renew its own lease)."""
    table = Delivery.__table__
    free = [table.c.claimed_until.is_(None), table.c.claimed_until < now]
    if claimer is not None:
        free.append(table.c.claimed_by == claimer)
    return (table.c.status == DeliveryState.PENDING.value, table.c.next_attempt_at <= now, or_(*free))


def _leasing(statement, lease_until: datetime, claimer: str, columns):
    """The UPDATE `statement` made a claim: the lease to `claimer` until `lease_until`, its generation
    bumped, `columns` returned."""
    table = Delivery.__table__
    return statement.values(
        claimed_until=lease_until, claimed_by=claimer, lease_generation=table.c.lease_generation + 1
    ).returning(*columns)


async def claim_due(
    connection: AsyncConnection,
    now: datetime,
    lease_until: datetime,
    claimer: str,
    per_endpoint: int,
    limit: int,
    skip_endpoints: Sequence[str],
    columns,
) -> list:
    """Leases PENDING deliveries that are due and not leased by anyone, per endpoint: at most
    `per_endpoint` of each endpoint (its oldest due first), at most `limit` in all, the endpoints
    served in turn (every endpoint's first before any endpoint's second), none of `skip_endpoints`
    (lanes that are full or paused). Each claim bumps the row's lease generation; returns `columns`."""
    table = Delivery.__table__
    conditions = list(due(now))
    if skip_endpoints:
        conditions.append(~in_list(connection, table.c.endpoint_id, skip_endpoints))
    rank = (
        func.row_number()
        .over(partition_by=table.c.endpoint_id, order_by=(table.c.next_attempt_at, table.c.created_at))
        .label("rank")
    )
    ranked = select(table.c.id, table.c.next_attempt_at, rank).where(*conditions).subquery()
    in_turn = (
        select(ranked.c.id)
        .where(ranked.c.rank <= per_endpoint)
        .order_by(ranked.c.rank, ranked.c.next_attempt_at)
        .limit(limit)
    )
    if _is_postgresql(connection):
        ids = list((await connection.execute(in_turn)).scalars())
        if not ids:
            return []
        # Another sender may be claiming some of them: those it has locked are skipped, not waited for.
        lockable = select(table.c.id).where(in_list(connection, table.c.id, ids), *due(now))
        ids = list((await connection.execute(lockable.with_for_update(skip_locked=True))).scalars())
        if not ids:
            return []
        statement = update(table).where(in_list(connection, table.c.id, ids))
    else:
        # The subquery chose them within this one statement (SQLite has one writer at a time), so
        # `due` is not asked again: with it, SQLite walked every due row by the status index, not
        # the ids by their key (10 ms a claim with 36,000 waiting).
        statement = update(table).where(table.c.id.in_(in_turn.scalar_subquery()))
    return list(await connection.execute(_leasing(statement, lease_until, claimer, columns)))


async def claim_lane(
    connection: AsyncConnection,
    now: datetime,
    lease_until: datetime,
    claimer: str,
    endpoint_id: str,
    limit: int,
    columns,
) -> list:
    """Leases at most `limit` of one endpoint's PENDING deliveries that are due and not leased by
    anyone, in the order they go out (next attempt, then acceptance): one range of the index
    ix_deliveries_endpoint_id_status_next_attempt_at, however many wait. Bumps each one's lease
    generation; returns `columns`."""
    table = Delivery.__table__
    oldest = (
        select(table.c.id)
        .where(table.c.endpoint_id == endpoint_id, *due(now))
        .order_by(table.c.next_attempt_at, table.c.created_at)
        .limit(limit)
    )
    if _is_postgresql(connection):
        # Another sender may be claiming some of them: those it has locked are skipped, not waited for.
        ids = list((await connection.execute(oldest.with_for_update(skip_locked=True))).scalars())
        if not ids:
            return []
        statement = update(table).where(in_list(connection, table.c.id, ids))
    else:
        statement = update(table).where(table.c.id.in_(oldest.scalar_subquery()))  # see claim_due
    return list(await connection.execute(_leasing(statement, lease_until, claimer, columns)))


async def renew_leases(
    connection: AsyncConnection, claimer: str, delivery_ids: Sequence[str], lease_until: datetime
) -> list[str]:
    """Extends `claimer`'s leases of these deliveries, in one statement; returns the ids it no
    longer holds (taken over, or finished). On PostgreSQL rows another transaction is writing (an
    outcome being recorded, a claim) are skipped, not waited for, so renewal never deadlocks with
    them; they are renewed next time, or were finishing."""
    table = Delivery.__table__
    mine = (in_list(connection, table.c.id, delivery_ids), table.c.claimed_by == claimer)
    if _is_postgresql(connection):
        free = select(table.c.id).where(*mine).with_for_update(skip_locked=True).scalar_subquery()
        statement = update(table).where(table.c.id.in_(free))
    else:
        statement = update(table).where(*mine)
    renewed = set(
        (await connection.execute(statement.values(claimed_until=lease_until).returning(table.c.id))).scalars()
    )
    rest = [id_ for id_ in delivery_ids if id_ not in renewed]
    if not rest:
        return []
    result = await connection.execute(
        select(table.c.id).where(in_list(connection, table.c.id, rest), table.c.claimed_by != claimer)
    )
    return list(result.scalars())


async def end_failure_streaks(connection: AsyncConnection, endpoint_ids: list[str], now: datetime) -> None:
    """Successes: these endpoints are not failing any more."""
    table = EndpointHealth.__table__
    await connection.execute(
        update(table)
        .where(in_list(connection, table.c.endpoint_id, endpoint_ids), table.c.failing_since.is_not(None))
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
