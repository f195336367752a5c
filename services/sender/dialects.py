"""Where SQLite and PostgreSQL differ for the sender, in one place: idempotent inserts, lists of ids,
the failure streak upsert, claiming due deliveries per endpoint (SKIP LOCKED on PostgreSQL; one atomic
UPDATE on SQLite, whose single writer needs nothing more), renewing leases, and the hot path's bulk
statements. All take a Core connection inside a transaction, and every statement is built from the
models' tables, so a renamed column fails when this module is imported, or at the latest in a test.

The hot path's bulk statements (storing deliveries, recording outcomes) run on SQLite as plain
`executemany` on the driver of the Core statement compiled once for it (`?` parameters in the order
`_SQLiteStatement` checks), with the datetimes formatted here the way `UTCDateTime` stores them:
SQLAlchemy's per-value bind processing would cost more than SQLite's own work. On PostgreSQL they
run as the Core statements (asyncpg takes the values as they are; SQLAlchemy caches the compiled form)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnDefault,
    ColumnElement,
    Row,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import ReturningUpdate, Update
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.sql.selectable import TableValuedAlias

from services.sender.models import Attempt, Base, Delivery, DeliveryState, EndpointHealth, UTCDateTime

DELIVERIES: Table = Base.metadata.tables[Delivery.__tablename__]
ATTEMPTS: Table = Base.metadata.tables[Attempt.__tablename__]
ENDPOINT_HEALTH: Table = Base.metadata.tables[EndpointHealth.__tablename__]


def _is_postgresql(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql"


def _insert(connection: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    return (postgresql.insert if _is_postgresql(connection) else sqlite.insert)(table)


def in_list(
    connection: AsyncConnection, column: ColumnElement[str] | QueryableAttribute[str], values: Sequence[str]
) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, one statement text whatever the
    number of values (so asyncpg prepares it once, not once per list length)."""
    if _is_postgresql(connection):
        return column == any_(bindparam(None, list(values), type_=ARRAY(String), unique=True))
    return column.in_(list(values))


def strings_table(connection: AsyncConnection, values: Sequence[str]) -> TableValuedAlias:
    """`values` as a table of one column, `value`, bound as one parameter: PostgreSQL's unnest of an
    array, SQLite's json_each of a JSON array (for correlated lookups, one per value, in one statement)."""
    if _is_postgresql(connection):
        array = bindparam(None, list(values), type_=ARRAY(String), unique=True)
        return func.unnest(array).table_valued("value").render_derived()
    return func.json_each(bindparam(None, json.dumps(list(values)), unique=True)).table_valued("value")


async def insert_ignoring_duplicates(connection: AsyncConnection, table: Table, rows: list[dict]) -> set[str]:
    """INSERT ... ON CONFLICT DO NOTHING: rows whose unique key exists already are left as they are.
    Returns the ids of the rows inserted."""
    if not rows:
        return set()
    statement = _insert(connection, table).on_conflict_do_nothing().returning(table.c.id)
    return set((await connection.execute(statement, rows)).scalars())


# ---- the hot path's bulk statements


def sqlite_time(value: datetime | None) -> str | None:
    """A datetime as UTCDateTime stores it on SQLite: naive UTC text in SQLAlchemy's DATETIME
    storage format (always with microseconds, so that text order is time order)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class _SQLiteTimes(dict[datetime | None, str | None]):
    """One batch's datetimes as `sqlite_time` formats them, each formatted once: the rows of a batch
    share their `now` and their lease's end, and a failed attempt's start is also its delivery's
    first failure. `times[value]` is its text."""

    def __missing__(self, value: datetime | None) -> str | None:
        text = self[value] = sqlite_time(value)
        return text


#: SQLite's driver (sqlite3, under aiosqlite) takes `?` parameters, in order.
_SQLITE = sqlite.dialect(paramstyle="qmark")


@dataclass(frozen=True)
class _SQLiteStatement:
    """A Core statement compiled once for SQLite's driver: its SQL, and the names of the values its
    `?` take, in order."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def compile(cls, statement: ClauseElement, column_keys: Sequence[str] | None = None) -> _SQLiteStatement:
        compiled = statement.compile(dialect=_SQLITE, column_keys=None if column_keys is None else list(column_keys))
        assert isinstance(compiled, SQLCompiler)  # a DML or SELECT statement
        return cls(compiled.string, tuple(compiled.positiontup or ()))

    def expecting(self, names: Sequence[str]) -> _SQLiteStatement:
        """Itself, after checking that its `?` take the values `names`, in that order."""
        if self.names != tuple(names):
            raise ValueError(f"the statement takes {self.names}, not {tuple(names)}: {self.sql}")
        return self


@dataclass(frozen=True)
class _BulkInsert:
    """INSERT ... ON CONFLICT DO NOTHING of rows with the keys it was made for, on SQLite: its
    positional parameters from the rows, time columns formatted (`parameters`)."""

    sqlite: _SQLiteStatement
    #: The rows' values in the statement's order (but for the columns given by `constants`).
    values: Callable[[dict], tuple]
    #: (position, value): the scalar defaults of the columns the rows leave out, as SQLAlchemy fills them.
    constants: tuple[tuple[int, Any], ...]
    #: The positions of the UTCDateTime columns.
    times: tuple[int, ...]

    def parameters(self, rows: Iterable[dict]) -> list[tuple]:
        times = _SQLiteTimes()
        parameters = []
        for row in rows:
            values = list(self.values(row))
            for position, value in self.constants:
                values.insert(position, value)
            for position in self.times:
                values[position] = times[values[position]]
            parameters.append(tuple(values))
        return parameters


def _getter(keys: Sequence[str]) -> Callable[[dict], tuple]:
    """A function giving a row's values of `keys`, as a tuple (operator.itemgetter's speed; a tuple
    for one key too)."""
    if len(keys) == 1:
        [key] = keys
        return lambda row: (row[key],)
    return operator.itemgetter(*keys)


@functools.lru_cache(maxsize=8)
def _bulk_insert(table: Table, keys: tuple[str, ...]) -> _BulkInsert:
    """The bulk INSERT of rows with `keys` into `table` (ValueError when a key is not a column of
    it, or it has a column the rows leave out whose default is not a constant)."""
    unknown = [key for key in keys if key not in table.c]
    if unknown:
        raise ValueError(f"not columns of {table.name}: {', '.join(unknown)}")
    statement = _SQLiteStatement.compile(sqlite.insert(table).on_conflict_do_nothing(), column_keys=keys)
    constants = []
    for position, name in enumerate(statement.names):
        if name not in keys:
            default = table.c[name].default
            if not (isinstance(default, ColumnDefault) and default.is_scalar):
                raise ValueError(f"{table.name}.{name} has no constant default: the rows must give it")
            constants.append((position, default.arg))
    present = [name for name in statement.names if name in keys]
    return _BulkInsert(
        sqlite=statement,
        values=_getter(present),
        constants=tuple(constants),
        times=tuple(
            position for position, name in enumerate(statement.names) if isinstance(table.c[name].type, UTCDateTime)
        ),
    )


async def insert_deliveries(connection: AsyncConnection, rows: list[dict]) -> set[str] | None:
    """Stores the deliveries (dicts with the same keys, each a column of `deliveries`) whose (event
    id, application, endpoint id) is not stored yet, in one statement; returns the ids of those
    stored now, or None when some were not and the driver cannot say which (the caller then looks)."""
    if not rows:
        return set()
    bulk = _bulk_insert(DELIVERIES, tuple(rows[0]))  # on both databases: checks the keys
    if _is_postgresql(connection):
        return await insert_ignoring_duplicates(connection, DELIVERIES, rows)
    result = await connection.exec_driver_sql(bulk.sqlite.sql, bulk.parameters(rows))
    return {row["id"] for row in rows} if result.rowcount == len(rows) else None


#: The values of an attempt record_outcomes takes, in order: the attempts' columns.
ATTEMPT_COLUMNS = (
    "delivery_id", "number", "started_at", "latency_seconds", "http_status", "response_body", "error", "succeeded",
    "account_id", "endpoint_id",
)  # fmt: skip
#: The values of an outcome record_outcomes takes, in order.
OUTCOME_VALUES = (
    "new_status", "number", "next_attempt", "error", "now", "failed_at", "delivery_id", "owner", "generation",
)  # fmt: skip

_ATTEMPT = insert(ATTEMPTS)


def _outcome_statement() -> Update:
    """Moves a delivery on after an attempt and releases its lease; fenced on the lease: only the
    owner of the generation the attempt was made under writes its outcome. The SET clause in the
    order of OUTCOME_VALUES (then the fence's), so that SQLite's `?` take them as given."""
    table = DELIVERIES
    return (
        update(table)
        .where(
            table.c.id == bindparam("delivery_id"),
            table.c.claimed_by == bindparam("owner"),
            table.c.lease_generation == bindparam("generation"),
        )
        .ordered_values(
            (table.c.status, bindparam("new_status")),
            (table.c.attempt_count, bindparam("number")),
            (table.c.next_attempt_at, bindparam("next_attempt", type_=UTCDateTime())),
            (table.c.claimed_until, null()),
            (table.c.claimed_by, literal_column("''", String)),
            (table.c.last_error, bindparam("error")),
            (table.c.updated_at, bindparam("now", type_=UTCDateTime())),
            (
                table.c.first_failure_at,
                func.coalesce(table.c.first_failure_at, bindparam("failed_at", type_=UTCDateTime())),
            ),
        )
    )


_OUTCOME = _outcome_statement()
_SQLITE_ATTEMPT = _SQLiteStatement.compile(_ATTEMPT, column_keys=ATTEMPT_COLUMNS).expecting(ATTEMPT_COLUMNS)
_SQLITE_OUTCOME = _SQLiteStatement.compile(_OUTCOME).expecting(OUTCOME_VALUES)


async def record_outcomes(connection: AsyncConnection, attempts: list[tuple], outcomes: list[tuple]) -> None:
    """Bulk INSERT of attempts (values in ATTEMPT_COLUMNS order: an attempt that was made is logged
    whoever holds the lease now) and bulk UPDATE of their deliveries (OUTCOME_VALUES order),
    releasing the leases; the UPDATE is fenced on the lease (owner and generation), so a sender that
    lost a delivery's lease leaves the new owner's state as it is."""
    if _is_postgresql(connection):
        await connection.execute(_ATTEMPT, [dict(zip(ATTEMPT_COLUMNS, a, strict=True)) for a in attempts])
        await connection.execute(_OUTCOME, [dict(zip(OUTCOME_VALUES, o, strict=True)) for o in outcomes])
        return
    times = _SQLiteTimes()
    await connection.exec_driver_sql(
        _SQLITE_ATTEMPT.sql,
        [(d, n, times[started], latency, status, body, error, succeeded, account, endpoint)
         for d, n, started, latency, status, body, error, succeeded, account, endpoint in attempts],
    )  # fmt: skip
    await connection.exec_driver_sql(
        _SQLITE_OUTCOME.sql,
        [(s, n, times[next_], e, times[now], times[failed], id_, owner, generation)
         for s, n, next_, e, now, failed, id_, owner, generation in outcomes],
    )  # fmt: skip


# ---- claims, leases and failure streaks


async def record_failure_streak(connection: AsyncConnection, endpoint_id: str, now: datetime) -> datetime:
    """Starts the endpoint's failure streak unless one is running; returns when it started."""
    table = ENDPOINT_HEALTH
    statement = _insert(connection, table).values(endpoint_id=endpoint_id, failing_since=now, updated_at=now)
    upsert = statement.on_conflict_do_update(
        index_elements=[table.c.endpoint_id],
        set_={
            "failing_since": func.coalesce(table.c.failing_since, statement.excluded.failing_since),
            "updated_at": statement.excluded.updated_at,
        },
    ).returning(table.c.failing_since)
    return (await connection.execute(upsert)).scalar_one()


def due(now: datetime, claimer: str | None = None) -> tuple[ColumnElement[bool], ...]:
    """PENDING, due, and leased by nobody (or by `claimer`, which may renew its own lease)."""
    table = DELIVERIES
    free = [table.c.claimed_until.is_(None), table.c.claimed_until < now]
    if claimer is not None:
        free.append(table.c.claimed_by == claimer)
    return (table.c.status == DeliveryState.PENDING.value, table.c.next_attempt_at <= now, or_(*free))


def held() -> tuple[ColumnElement[bool], ...]:
    """PENDING with no next attempt: kept for its paused endpoint until it is resumed (no poll finds
    it due; see services/sender/pauses.py)."""
    table = DELIVERIES
    return (table.c.status == DeliveryState.PENDING.value, table.c.next_attempt_at.is_(None))


def _leasing(
    statement: Update, lease_until: datetime, claimer: str, columns: Sequence[ColumnElement[Any]]
) -> ReturningUpdate[Any]:
    """The UPDATE `statement` made a claim: the lease to `claimer` until `lease_until`, its generation
    bumped, `columns` returned."""
    table = DELIVERIES
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
    columns: Sequence[ColumnElement[Any]],
) -> list[Row[Any]]:
    """Leases PENDING deliveries that are due and not leased by anyone, per endpoint: at most
    `per_endpoint` of each endpoint (its oldest due first), at most `limit` in all, the endpoints
    served in turn (every endpoint's first before any endpoint's second), none of `skip_endpoints`
    (lanes that are full or paused). Each claim bumps the row's lease generation; returns `columns`."""
    table = DELIVERIES
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
        ids: list[str] = list((await connection.execute(in_turn)).scalars())
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
    columns: Sequence[ColumnElement[Any]],
) -> list[Row[Any]]:
    """Leases at most `limit` of one endpoint's PENDING deliveries that are due and not leased by
    anyone, in the order they go out (next attempt, then acceptance): one range of the index
    ix_deliveries_endpoint_id_status_next_attempt_at, however many wait. Bumps each one's lease
    generation; returns `columns`."""
    table = DELIVERIES
    oldest = (
        select(table.c.id)
        .where(table.c.endpoint_id == endpoint_id, *due(now))
        .order_by(table.c.next_attempt_at, table.c.created_at)
        .limit(limit)
    )
    if _is_postgresql(connection):
        # Another sender may be claiming some of them: those it has locked are skipped, not waited for.
        ids: list[str] = list((await connection.execute(oldest.with_for_update(skip_locked=True))).scalars())
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
    table = DELIVERIES
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
    table = ENDPOINT_HEALTH
    await connection.execute(
        update(table)
        .where(in_list(connection, table.c.endpoint_id, endpoint_ids), table.c.failing_since.is_not(None))
        .values(failing_since=None, updated_at=now)
    )


def write_serializer(engine: AsyncEngine) -> contextlib.AbstractAsyncContextManager[None]:
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

    async def __aexit__(self, *_exc: object) -> None:
        self._lock.release()
