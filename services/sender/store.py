"""The durable delivery queue: what the servicer and the workers read and write, one transaction each.

Leases: a sender works on a delivery only while it holds it (`claimed_by` = its id and `claimed_until`
ahead). Leases are short and renewed while held (`renew`, one statement for all of them), so a sender
that dies lets them run out within seconds and its deliveries become due again for any sender. Every
claim bumps the row's `lease_generation`, and every write of an outcome is fenced on the owner and the
generation it read: a sender that lost a lease never overwrites the new owner's result.

The hot path (enqueue, claim, record_attempts) speaks SQLAlchemy Core, not the ORM, and hands the
workers `QueuedDelivery` values rather than mapped rows: per delivery, the ORM's unit of work and
instance loading cost more CPU than the rest of the attempt.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Select, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from services.common.db import sessionmaker, utcnow
from services.common.paging import Keyset, Page
from services.common.tenancy import AccountScoped
from services.sender import dialects
from services.sender.models import Attempt, Delivery, DeliveryState, EndpointHealth

# Rows per INSERT statement (SQLite allows 32766 bound parameters; a delivery binds 16).
INSERT_CHUNK = 1000
T = TypeVar("T")
#: Rows a listing reads from the database at a time (its page may end after any of them).
LIST_FETCH_ROWS = 20
#: How long the set of failing endpoints read from the database is trusted: another replica may start
#: a streak meanwhile, which this one's successes then end only after the next reload.
FAILING_REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class NewDelivery:
    account_id: str
    endpoint_id: str
    #: The event's application: event ids are the applications' own, so (application, event id,
    #: endpoint id) is what makes a delivery (two applications may both send an event "42").
    application: str
    event_id: str
    #: The event's JSON body (encoded once per event, shared by its endpoints; see `encode_event`).
    event_json: str
    traceparent: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """The idempotency key: one delivery per (application, event id, endpoint id)."""
        return (self.application, self.event_id, self.endpoint_id)


def encode_event(body: dict) -> str:
    """The event's JSON as stored and as a webhook's body (so a webhook sends it without re-encoding)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class QueuedDelivery:
    """A delivery as the workers need it: what Deliver stored or the poller claimed, without a
    mapped row (cheap to make by the thousand)."""

    id: str
    account_id: str
    endpoint_id: str
    event_id: str
    event: str
    traceparent: str
    attempt_count: int
    claimed_until: datetime | None
    claimed_by: str
    created_at: datetime
    status: str = DeliveryState.PENDING.value
    lease_generation: int = 0

    def as_row(self, **changes: object) -> Delivery:
        """A transient Delivery (for a watcher's update), with `changes` applied."""
        values = dict(
            id=self.id,
            account_id=self.account_id,
            endpoint_id=self.endpoint_id,
            event_id=self.event_id,
            event=self.event,
            traceparent=self.traceparent,
            status=self.status,
            attempt_count=self.attempt_count,
            next_attempt_at=None,
            last_error="",
            created_at=self.created_at,
            updated_at=self.created_at,
        )
        values.update(changes)
        return Delivery(**values)


#: The columns a QueuedDelivery is read from, in its fields' order.
_QUEUED_COLUMNS = tuple(
    Delivery.__table__.c[name]
    for name in (
        "id", "account_id", "endpoint_id", "event_id", "event", "traceparent",
        "attempt_count", "claimed_until", "claimed_by", "created_at", "status", "lease_generation",
    )
)  # fmt: skip


def _delivery_id_of(result: AttemptResult) -> str:
    return result.delivery_id


def _accepted_at(delivery: QueuedDelivery) -> datetime:
    return delivery.created_at


def queued_from_row(row: Sequence[Any]) -> QueuedDelivery:
    return QueuedDelivery(*row)


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
    #: The lease the attempt was made under: its outcome is written only while that lease holds.
    lease_generation: int = 0
    #: When the outcome was judged: the delivery's update time as written and as watchers are told.
    finished_at: datetime = field(default_factory=utcnow)
    #: The delivery's account (its attempts are counted per account and endpoint).
    account_id: str = ""


#: An account's deliveries: every get, list and retry reads them through this.
DELIVERIES = AccountScoped(Delivery)
#: ListDeliveries' order: newest first.
PAGES = Keyset[Delivery]("deliveries", Delivery.created_at, Delivery.id, descending=True)
#: A resumed WatchDeliveries' order: in the order they changed (services/sender/watch_cursor.py).
CHANGES = Keyset[Delivery]("delivery-changes", Delivery.updated_at, Delivery.id)
#: Rows a resumed watch reads at a time, each read a short transaction of its own.
CHANGES_READ_ROWS = 200


@dataclass(frozen=True)
class DeliveryFilter:
    """Which of an account's deliveries a list selects: each given condition must hold."""

    endpoint_id: str = ""
    status: DeliveryState | None = None
    event_id: str = ""
    #: Created at or after / before these times (None: no bound).
    created_after: datetime | None = None
    created_before: datetime | None = None
    application: str = ""

    def apply(self, query: Select[T]) -> Select[T]:
        if self.endpoint_id:
            query = query.where(Delivery.endpoint_id == self.endpoint_id)
        if self.status is not None:
            query = query.where(Delivery.status == self.status.value)
        if self.event_id:
            query = query.where(Delivery.event_id == self.event_id)
        if self.application:
            query = query.where(Delivery.application == self.application)
        if self.created_after is not None:
            query = query.where(Delivery.created_at >= self.created_after)
        if self.created_before is not None:
            query = query.where(Delivery.created_at < self.created_before)
        return query


async def _attempts_of(session: AsyncSession, delivery_ids: list[str]) -> dict[str, list[Attempt]]:
    """Delivery id -> its attempts, oldest first (by number; by id between a retry's equals)."""
    attempts: dict[str, list[Attempt]] = {}
    for start in range(0, len(delivery_ids), INSERT_CHUNK):
        chunk = delivery_ids[start : start + INSERT_CHUNK]
        result = await session.scalars(
            select(Attempt)
            .where(Attempt.delivery_id.in_(chunk))
            .order_by(Attempt.delivery_id, Attempt.number, Attempt.id)
        )
        for attempt in result:
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    return attempts


#: How far back an endpoint's attempts are counted in its health figures.
STATS_WINDOW = timedelta(hours=24)


@dataclass
class EndpointFigures:
    """An endpoint's health, as BatchGetEndpointStats answers it."""

    #: Its last attempt (within the retention): when it started, whether it delivered, its HTTP status.
    last_attempt_at: datetime | None = None
    last_attempt_succeeded: bool = False
    last_http_status: int = 0
    #: Attempts started within STATS_WINDOW, and how many of them delivered.
    attempts: int = 0
    succeeded: int = 0
    #: Since when it has failed without a success in between (None: it is not failing).
    failing_since: datetime | None = None
    #: Deliveries PENDING for it (due, waiting for a retry, or held while it is paused).
    pending: int = 0


class DeliveryStore:
    def __init__(self, engine: AsyncEngine, sender_id: str, lease_seconds: float):
        self.engine = engine
        self.sessions = sessionmaker(engine)
        self.sender_id = sender_id
        self.lease = timedelta(seconds=lease_seconds)
        #: Least lease left for an attempt to start on it: the attempt's own time is covered by
        #: renewal, and half a lease leaves a renewal that lags (a loaded host) room to land.
        self.lease_margin = self.lease / 2
        self._serializer = dialects.write_serializer(engine)
        self._failing: set[str] | None = None
        self._failing_loaded_at = 0.0

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """A write transaction (serialized within the process where the database needs it)."""
        async with self._serializer, self.sessions.begin() as session:
            yield session

    @contextlib.asynccontextmanager
    async def _writing_core(self) -> AsyncIterator[AsyncConnection]:
        """The same, on a bare connection, for the hot path's Core statements."""
        async with self._serializer, self.engine.begin() as connection:
            yield connection

    async def enqueue(
        self, items: list[NewDelivery], lease: int | dict[str, int] | None = None
    ) -> tuple[dict[tuple[str, str, str], str], list[QueuedDelivery]]:
        """Stores the deliveries that do not exist yet, all in one transaction: one INSERT ... ON
        CONFLICT DO NOTHING for the lot, and a SELECT only for the ids of those that existed. The first
        `lease` new ones (all when None; with a dict, the first `lease[endpoint id]` of each endpoint)
        are stored leased to this sender, for its hot path; the rest are left due for the poller (of
        any sender). Returns the id of each key (`NewDelivery.key`:
        application, event id, endpoint id), old or new, and the deliveries created now (`claimed_by`
        says which are leased)."""
        now = utcnow()
        lease_until = now + self.lease
        fresh: dict[tuple[str, str, str], dict] = {}
        per_endpoint: dict[str, int] | None = dict(lease) if isinstance(lease, dict) else None
        for item in items:
            key = item.key
            if key in fresh:
                continue
            if per_endpoint is not None:
                leased = per_endpoint.get(item.endpoint_id, 0) > 0
                if leased:
                    per_endpoint[item.endpoint_id] -= 1
            else:
                leased = lease is None or (isinstance(lease, int) and len(fresh) < lease)
            fresh[key] = dict(
                id=str(uuid.uuid4()),
                account_id=item.account_id,
                endpoint_id=item.endpoint_id,
                application=item.application,
                event_id=item.event_id,
                event=item.event_json,
                traceparent=item.traceparent,
                status=DeliveryState.PENDING.value,
                attempt_count=0,
                next_attempt_at=now,
                first_failure_at=None,
                claimed_until=lease_until if leased else None,
                claimed_by=self.sender_id if leased else "",
                last_error="",
                # A microsecond apart in the order given: the acceptance order an ordered endpoint
                # is served in, also when its deliveries are claimed back from the database.
                created_at=now + timedelta(microseconds=len(fresh)),
                # The same, as watchers are told of it (QueuedDelivery.as_row) and resume from it.
                updated_at=now + timedelta(microseconds=len(fresh)),
            )
        rows = list(fresh.values())
        inserted: set[str] = set()
        ids: dict[tuple[str, str, str], str] = {}
        async with self._writing_core() as connection:
            conflicts = False
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start : start + INSERT_CHUNK]
                stored_now = await dialects.insert_deliveries(connection, chunk)
                if stored_now is None or len(stored_now) < len(chunk):
                    conflicts = True
                else:
                    inserted.update(stored_now)
            if conflicts:
                # Some existed already (a replay): one look at the events' deliveries tells which of
                # ours went in and the ids of those that were there.
                inserted.clear()
                event_ids = sorted({event_id for _, event_id, _ in fresh})
                table = Delivery.__table__
                for start in range(0, len(event_ids), INSERT_CHUNK):
                    result = await connection.execute(
                        select(table.c.application, table.c.event_id, table.c.endpoint_id, table.c.id).where(
                            dialects.in_list(connection, table.c.event_id, event_ids[start : start + INSERT_CHUNK])
                        )
                    )
                    for found in result:
                        ids[(found.application, found.event_id, found.endpoint_id)] = found.id
                inserted.update(row["id"] for key, row in fresh.items() if ids.get(key) == row["id"])
        created: list[QueuedDelivery] = []
        for key, row in fresh.items():
            if row["id"] in inserted:
                ids[key] = row["id"]
                created.append(
                    QueuedDelivery(
                        row["id"], row["account_id"], row["endpoint_id"], row["event_id"], row["event"],
                        row["traceparent"], 0, row["claimed_until"], row["claimed_by"], row["created_at"],
                    )
                )  # fmt: skip
        return ids, created

    def holds_lease(self, delivery: QueuedDelivery | Delivery) -> bool:
        """Whether this sender leased the row (as last read or renewed) and enough of the lease is left
        to start an attempt on it (`lease_margin`)."""
        return (
            delivery.status == DeliveryState.PENDING
            and delivery.claimed_by == self.sender_id
            and delivery.claimed_until is not None
            and delivery.claimed_until - utcnow() > self.lease_margin
        )

    async def claim(self, delivery_id: str) -> QueuedDelivery | None:
        """Takes (or renews) the lease of a PENDING, due delivery; None when another sender holds it,
        or it is no longer due or pending."""
        now = utcnow()
        async with self._writing_core() as connection:
            result = await connection.execute(
                update(Delivery.__table__)
                .where(
                    Delivery.__table__.c.id == delivery_id,
                    *dialects.due(now, self.sender_id),
                )
                .values(
                    claimed_until=now + self.lease,
                    claimed_by=self.sender_id,
                    lease_generation=Delivery.__table__.c.lease_generation + 1,
                )
                .returning(*_QUEUED_COLUMNS)
            )
            row = result.first()
        return None if row is None else queued_from_row(row)

    async def claim_due(
        self, per_endpoint: int, limit: int, skip_endpoints: list[str] | tuple[str, ...] = ()
    ) -> list[QueuedDelivery]:
        """Leases due deliveries per endpoint (see `dialects.claim_due`): never the oldest rows of
        all, so one endpoint's backlog cannot take the claims of the others."""
        now = utcnow()
        async with self._writing_core() as connection:
            rows = await dialects.claim_due(
                connection, now, now + self.lease, self.sender_id, per_endpoint, limit, skip_endpoints, _QUEUED_COLUMNS
            )
        # In acceptance order (an UPDATE returns its rows in no particular order).
        return sorted((queued_from_row(row) for row in rows), key=_accepted_at)

    async def claim_lane(self, endpoint_id: str, limit: int) -> list[QueuedDelivery]:
        """Leases at most `limit` of one endpoint's due deliveries, the next to go out first (see
        `dialects.claim_lane`): what its lane has room for, when deliveries wait for it here."""
        now = utcnow()
        async with self._writing_core() as connection:
            rows = await dialects.claim_lane(
                connection, now, now + self.lease, self.sender_id, endpoint_id, limit, _QUEUED_COLUMNS
            )
        return sorted((queued_from_row(row) for row in rows), key=_accepted_at)

    async def renew(self, deliveries: list[QueuedDelivery]) -> list[QueuedDelivery]:
        """Extends this sender's leases of `deliveries` by a full lease, in one statement, and notes
        the new end in each of them; returns those whose lease was lost (taken over or finished)."""
        if not deliveries:
            return []
        until = utcnow() + self.lease
        lost_ids: set[str] = set()
        async with self._writing_core() as connection:
            for start in range(0, len(deliveries), INSERT_CHUNK):
                chunk = [d.id for d in deliveries[start : start + INSERT_CHUNK]]
                lost_ids.update(await dialects.renew_leases(connection, self.sender_id, chunk, until))
        lost = []
        for delivery in deliveries:
            if delivery.id in lost_ids:
                lost.append(delivery)
            else:
                delivery.claimed_until = until
        return lost

    async def record_attempts(self, results: list[AttemptResult]) -> list[datetime | None]:
        """Logs attempts and moves their deliveries on, releasing the leases, and keeps the endpoints'
        failure streaks, all in one transaction (the attempt recorder batches what finished together):
        bulk INSERT of the attempts, bulk UPDATE of the deliveries; a streak is written only for an
        endpoint that failed, or that succeeded while known to be failing. Returns, per result, after
        a failure, since when its endpoint has failed (None after a success, and after a failure
        that a later success of its endpoint in the same batch ended)."""
        now = utcnow()
        ordered = sorted(results, key=_delivery_id_of)  # one lock order for every batch
        async with self._writing_core() as connection:
            await dialects.record_outcomes(
                connection,
                [
                    (r.delivery_id, r.number, r.started_at, r.latency_seconds, r.http_status,
                     r.response_body, r.error, r.succeeded, r.account_id, r.endpoint_id)
                    for r in ordered
                ],
                [
                    (r.status.value, r.number, r.next_attempt_at, r.error, r.finished_at,
                     None if r.succeeded else r.started_at, r.delivery_id, self.sender_id, r.lease_generation)
                    for r in ordered
                ],
            )  # fmt: skip
            # Each endpoint's streak follows its last outcome in the batch.
            last_outcome = {r.endpoint_id: r.succeeded for r in results}
            failing_ids = await self._failing_endpoints(connection)
            recovered = sorted(e for e, succeeded in last_outcome.items() if succeeded and e in failing_ids)
            if recovered:
                await dialects.end_failure_streaks(connection, recovered, now)
            failing = {
                endpoint_id: await dialects.record_failure_streak(connection, endpoint_id, now)
                for endpoint_id, succeeded in last_outcome.items()
                if not succeeded
            }
        # Only once committed does the in-memory set follow.
        failing_ids.difference_update(recovered)
        failing_ids.update(failing)
        # A failure followed in the batch by a success of its endpoint: no streak, so None for it too.
        return [None if r.succeeded else failing.get(r.endpoint_id) for r in results]

    async def _failing_endpoints(self, connection: AsyncConnection) -> set[str]:
        """The endpoints with a failure streak, as read at most FAILING_REFRESH_SECONDS ago (and
        kept up to date with this sender's own outcomes since)."""
        clock = time.monotonic()
        if self._failing is None or clock - self._failing_loaded_at > FAILING_REFRESH_SECONDS:
            health = EndpointHealth.__table__
            result = await connection.execute(select(health.c.endpoint_id).where(health.c.failing_since.is_not(None)))
            self._failing = set(result.scalars())
            self._failing_loaded_at = clock
        return self._failing

    async def settle(
        self,
        delivery: QueuedDelivery,
        status: DeliveryState,
        error: str,
        next_attempt_at: datetime | None = None,
        released: bool = False,
    ) -> Delivery | None:
        """Moves a delivery on without an attempt (endpoint deleted or disabled, registry unreachable),
        fenced on the lease it was read under (nothing changes when that lease was lost); `released`:
        its outcome was written already (the lease given back), and it changes only while nobody
        has leased it since."""
        fence = (
            (Delivery.claimed_by == "",)
            if released
            else (Delivery.claimed_by == self.sender_id, Delivery.lease_generation == delivery.lease_generation)
        )
        async with self._writing() as session:
            await session.execute(
                update(Delivery)
                .where(Delivery.id == delivery.id, *fence)
                .values(
                    status=status.value,
                    last_error=error,
                    next_attempt_at=next_attempt_at,
                    claimed_until=None,
                    claimed_by="",
                    updated_at=utcnow(),
                )
            )
            return await session.get(Delivery, delivery.id, populate_existing=True)

    async def get(self, account_id: str, delivery_id: str) -> tuple[Delivery, list[Attempt]] | None:
        async with self.sessions() as session:
            delivery = await DELIVERIES.get(session, account_id, delivery_id)
            if delivery is None:
                return None
            attempts = await _attempts_of(session, [delivery_id])
            return delivery, attempts.get(delivery_id, [])

    async def attempts_of(self, delivery_ids: list[str]) -> dict[str, list[Attempt]]:
        """The attempts of each of these deliveries (ids read through DELIVERIES already), oldest
        first, in one query: a list page's."""
        if not delivery_ids:
            return {}
        async with self.sessions() as session:
            return await _attempts_of(session, delivery_ids)

    async def list_page(
        self, account_id: str, page: Page, which: DeliveryFilter | None = None
    ) -> AsyncGenerator[Delivery, None]:
        """The account's deliveries of `page` (PAGES: newest first, one more than the page holds)
        that `which` selects, read as they are taken (a caller that has enough stops reading: close it
        with contextlib.aclosing)."""
        query = PAGES.apply(
            (which or DeliveryFilter()).apply(DELIVERIES.statement(account_id)), page
        ).execution_options(yield_per=LIST_FETCH_ROWS)
        async with self.sessions() as session:
            rows = await session.stream_scalars(query)
            async for row in rows:
                yield row

    async def changed_since(
        self, account_id: str, since: datetime, endpoint_id: str = ""
    ) -> AsyncGenerator[Delivery, None]:
        """The account's deliveries (to `endpoint_id`, if given) changed at or after `since`, as they
        now stand, in the order they changed (update time, then id: CHANGES), CHANGES_READ_ROWS at
        a time, so that no transaction stays open while a slow watcher reads."""
        statement = DELIVERIES.statement(account_id)
        if endpoint_id:
            statement = statement.where(Delivery.endpoint_id == endpoint_id)
        page = Page(CHANGES_READ_ROWS, (since, ""), {})
        while True:
            async with self.sessions() as session:
                rows = list((await session.scalars(CHANGES.apply(statement, page))).all())
            for row in rows[:CHANGES_READ_ROWS]:
                yield row
            if len(rows) <= CHANGES_READ_ROWS:
                return
            last = rows[CHANGES_READ_ROWS - 1]
            page = Page(CHANGES_READ_ROWS, (last.updated_at, last.id), {})

    async def retry(self, account_id: str, delivery_id: str) -> Delivery | None:
        """Makes the delivery PENDING and due now, leased to this sender for its hot path."""
        now = utcnow()
        async with self._writing() as session:
            delivery = await DELIVERIES.get(session, account_id, delivery_id, for_update=True)
            if delivery is None:
                return None
            delivery.status = DeliveryState.PENDING.value
            delivery.next_attempt_at = now
            delivery.updated_at = now
            if delivery.claimed_until is None or delivery.claimed_until < now:
                delivery.claimed_until = now + self.lease
                delivery.claimed_by = self.sender_id
        return delivery

    async def retry_failed(self, account_id: str, which: DeliveryFilter, limit: int) -> tuple[int, bool]:
        """Makes at most `limit` of the account's FAILED deliveries that `which` selects PENDING and
        due now, oldest first, unleased (the poller takes them); returns how many, and whether more
        matched."""
        now = utcnow()
        table = Delivery.__table__
        failed = replace(which, status=DeliveryState.FAILED)
        async with self._writing_core() as connection:
            selected = failed.apply(select(Delivery.id).where(Delivery.account_id == account_id))
            rows = await connection.execute(selected.order_by(Delivery.created_at, Delivery.id).limit(limit + 1))
            ids = list(rows.scalars())
            more, ids = len(ids) > limit, ids[:limit]
            queued = 0
            for start in range(0, len(ids), INSERT_CHUNK):
                result = await connection.execute(
                    update(table)
                    .where(
                        dialects.in_list(connection, table.c.id, ids[start : start + INSERT_CHUNK]),
                        table.c.status == DeliveryState.FAILED.value,
                    )
                    .values(
                        status=DeliveryState.PENDING.value,
                        next_attempt_at=now,
                        updated_at=now,
                        claimed_until=None,
                        claimed_by="",
                    )
                )
                queued += result.rowcount
        return queued, more

    async def endpoint_figures(self, account_id: str, endpoint_ids: Sequence[str]) -> dict[str, EndpointFigures]:
        """The health of the account's endpoints among `endpoint_ids`; one that is not the account's
        (or has had neither an attempt within the retention nor a pending delivery) is absent. Four
        statements, whatever the number of ids, each reading one index range per endpoint: its last
        attempt and its attempts of the last 24 hours on the attempts' (account, endpoint, start)
        index, its pending deliveries on the deliveries' (endpoint, status, ...) one, and its failure
        streak by key, only for endpoints the first two showed to be the account's (the streak's table
        does not name accounts; an endpoint's deliveries and attempts are all its owner's)."""
        ids = sorted(set(endpoint_ids))
        since = utcnow() - STATS_WINDOW
        figures: dict[str, EndpointFigures] = {}
        async with self.engine.connect() as connection:
            wanted = dialects.strings_table(connection, ids)
            each = Attempt.__table__.alias("each_one")
            last_of_each = (
                select(each.c.id)
                .where(each.c.account_id == account_id, each.c.endpoint_id == wanted.c.value)
                .order_by(each.c.started_at.desc())
                .limit(1)
                .correlate(wanted)
                .scalar_subquery()
            )
            last = await connection.execute(
                select(Attempt.endpoint_id, Attempt.started_at, Attempt.succeeded, Attempt.http_status).where(
                    Attempt.id.in_(select(last_of_each).select_from(wanted))
                )
            )
            for endpoint_id, started_at, succeeded, http_status in last:
                figures[endpoint_id] = EndpointFigures(started_at, bool(succeeded), http_status)
            recent = await connection.execute(
                select(Attempt.endpoint_id, func.count(), func.sum(case((Attempt.succeeded, 1), else_=0)))
                .where(
                    Attempt.account_id == account_id,
                    dialects.in_list(connection, Attempt.endpoint_id, ids),
                    Attempt.started_at >= since,
                )
                .group_by(Attempt.endpoint_id)
            )
            for endpoint_id, count, succeeded in recent:
                found = figures.setdefault(endpoint_id, EndpointFigures())
                found.attempts, found.succeeded = count, succeeded or 0
            # Counted per endpoint, correlated: one range of the (endpoint, status, ...) index each. The
            # account is compared through coalesce (it is never NULL): as a bare `account_id = ?` (or
            # with an IN list of endpoints) SQLite, without statistics, picks an account index instead
            # and walks all the account's deliveries.
            pending_of_each = (
                select(func.count())
                .where(
                    Delivery.endpoint_id == wanted.c.value,
                    Delivery.status == DeliveryState.PENDING.value,
                    func.coalesce(Delivery.account_id, "") == account_id,
                )
                .correlate(wanted)
                .scalar_subquery()
            )
            pending = await connection.execute(select(wanted.c.value, pending_of_each).select_from(wanted))
            for endpoint_id, count in cast("list[tuple[str, int]]", pending.all()):
                if count:
                    figures.setdefault(endpoint_id, EndpointFigures()).pending = count
            if figures:
                streaks = await connection.execute(
                    select(EndpointHealth.endpoint_id, EndpointHealth.failing_since).where(
                        dialects.in_list(connection, EndpointHealth.endpoint_id, sorted(figures)),
                        EndpointHealth.failing_since.is_not(None),
                    )
                )
                for endpoint_id, failing_since in streaks:
                    figures[endpoint_id].failing_since = failing_since
        return figures

    async def has_held(self, endpoint_id: str) -> bool:
        """Whether deliveries are kept for the endpoint (paused when they were last tried)."""
        table = Delivery.__table__
        async with self.engine.connect() as connection:
            query = select(table.c.id).where(table.c.endpoint_id == endpoint_id, *dialects.held()).limit(1)
            return (await connection.execute(query)).first() is not None

    async def held_endpoints(self) -> list[str]:
        """The endpoints deliveries are kept for."""
        table = Delivery.__table__
        async with self.engine.connect() as connection:
            return list(
                (await connection.execute(select(table.c.endpoint_id).where(*dialects.held()).distinct())).scalars()
            )

    async def release_held(self, endpoint_id: str, given_back: list[str]) -> int:
        """Lets the deliveries kept for the endpoint go: in one transaction, this sender's leases of
        `given_back` are given up, and the endpoint's held deliveries, with those of its due ones
        nobody leases, are made due now, all at the same time, so they are claimed in the order they
        arrived (`claim_lane`: next attempt, then acceptance). Returns how many were made due."""
        now = utcnow()
        table = Delivery.__table__
        async with self._writing_core() as connection:
            for start in range(0, len(given_back), INSERT_CHUNK):
                chunk = given_back[start : start + INSERT_CHUNK]
                await connection.execute(
                    update(table)
                    .where(dialects.in_list(connection, table.c.id, chunk), table.c.claimed_by == self.sender_id)
                    .values(claimed_until=None, claimed_by="")
                )
            was_held = table.c.next_attempt_at.is_(None)
            result = await connection.execute(
                update(table)
                .where(
                    table.c.endpoint_id == endpoint_id,
                    table.c.status == DeliveryState.PENDING.value,
                    or_(was_held, table.c.next_attempt_at <= now),
                    or_(table.c.claimed_until.is_(None), table.c.claimed_until < now),
                )
                .values(next_attempt_at=now, last_error=case((was_held, ""), else_=table.c.last_error), updated_at=now)
            )
            return result.rowcount

    async def release(self, delivery_ids: list[str]) -> None:
        """Gives up this sender's lease on deliveries it will not work on now (the poller or another
        sender takes them)."""
        if not delivery_ids:
            return
        table = Delivery.__table__
        async with self._writing_core() as connection:
            await connection.execute(
                update(table)
                .where(dialects.in_list(connection, table.c.id, delivery_ids), table.c.claimed_by == self.sender_id)
                .values(claimed_until=None, claimed_by="")
            )
