"""The sender's SQL (services/sender/dialects.py), built from the models' tables, run against the tables
its migrations made, on SQLite and on PostgreSQL: what each statement writes reads back the same
through the models, and rows naming a column the table does not have (a renamed column) are refused
on both databases instead of losing the value."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import create_engine, upgrade_async
from services.sender import dialects
from services.sender.dialects import ATTEMPTS, DELIVERIES, ENDPOINT_HEALTH
from services.sender.models import DeliveryState
from services.sender.server import MIGRATIONS, VERSION_TABLE

PENDING, SUCCEEDED = DeliveryState.PENDING.value, DeliveryState.SUCCEEDED.value
#: What the claims return.
COLUMNS = (DELIVERIES.c.id, DELIVERIES.c.endpoint_id, DELIVERIES.c.lease_generation)


@pytest_asyncio.fixture
async def engine(database_url) -> AsyncIterator[AsyncEngine]:
    """The sender's tables, made by its migrations."""
    await upgrade_async(database_url, MIGRATIONS, VERSION_TABLE)
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def delivery_row(endpoint_id: str, event_id: str, now: datetime, order: int, **fields) -> dict:
    """A delivery as DeliveryStore.enqueue stores it (the same keys, in the same order)."""
    return dict(
        id=str(uuid.uuid4()), account_id="acct", endpoint_id=endpoint_id, application="app", event_id=event_id,
        event=json.dumps({"id": event_id}), traceparent="00-trace", status=PENDING, attempt_count=0,
        next_attempt_at=now, first_failure_at=None, claimed_until=None, claimed_by="", last_error="",
        created_at=now + timedelta(microseconds=order), updated_at=now,
    ) | fields  # fmt: skip


async def stored(engine: AsyncEngine, table, *where) -> list[dict]:
    async with engine.connect() as connection:
        return [dict(row._mapping) for row in await connection.execute(select(table).where(*where))]


async def test_the_hot_path_statements_write_what_the_models_read_back(engine):
    now = datetime.now(UTC)
    lease_until = now + timedelta(seconds=30)
    rows = [
        delivery_row("e1", "1", now, 0),
        delivery_row("e1", "2", now, 1),
        delivery_row("e2", "1", now, 2),
        delivery_row("e2", "2", now, 3),
        delivery_row("e3", "1", now, 4, claimed_until=lease_until, claimed_by="s1"),  # leased as enqueued
    ]
    by_id = {row["id"]: row for row in rows}

    async with engine.begin() as connection:
        assert await dialects.insert_deliveries(connection, rows) == set(by_id)
    async with engine.begin() as connection:  # a replay: every key is stored already
        assert not await dialects.insert_deliveries(connection, [dict(row, id=str(uuid.uuid4())) for row in rows])
    assert {row["id"]: row for row in await stored(engine, DELIVERIES)} == {
        id_: dict(row, lease_generation=0) for id_, row in by_id.items()
    }

    # Claims: each endpoint's oldest first; then what one lane has left.
    async with engine.begin() as connection:
        claimed = await dialects.claim_due(connection, now, lease_until, "s2", 1, 10, (), COLUMNS)
    assert sorted(tuple(row) for row in claimed) == sorted([(rows[0]["id"], "e1", 1), (rows[2]["id"], "e2", 1)])
    async with engine.begin() as connection:
        lane = await dialects.claim_lane(connection, now, lease_until, "s2", "e2", 10, COLUMNS)
        assert [tuple(row) for row in lane] == [(rows[3]["id"], "e2", 1)]
        assert await dialects.claim_due(connection, now, lease_until, "s3", 1, 10, ["e1"], COLUMNS) == []

    # Outcomes: a success, a failure to retry, and one from a stale lease generation (left as it is).
    started, retry_at, later = now + timedelta(seconds=1), now + timedelta(minutes=1), now + timedelta(seconds=2)
    second_lease_until = retry_at + timedelta(seconds=30)
    attempts = [
        (rows[0]["id"], 1, started, 0.25, 200, "ok", "", True, "acct", "e1"),
        (rows[2]["id"], 1, started, 0.5, 503, "busy", "HTTP 503", False, "acct", "e2"),
    ]
    outcomes = [
        (SUCCEEDED, 1, None, "", later, None, rows[0]["id"], "s2", 1),
        (PENDING, 1, retry_at, "HTTP 503", later, started, rows[2]["id"], "s2", 1),
        (SUCCEEDED, 1, None, "", later, None, rows[3]["id"], "s2", 0),
    ]
    async with engine.begin() as connection:
        await dialects.record_outcomes(connection, attempts, outcomes)
    assert sorted(
        tuple(row[name] for name in dialects.ATTEMPT_COLUMNS) for row in await stored(engine, ATTEMPTS)
    ) == sorted(attempts)
    after = {row["id"]: row for row in await stored(engine, DELIVERIES)}
    released = dict(claimed_until=None, claimed_by="", lease_generation=1, attempt_count=1, updated_at=later)
    assert after[rows[0]["id"]] == dict(rows[0], **released, status=SUCCEEDED, next_attempt_at=None)
    assert after[rows[2]["id"]] == dict(
        rows[2], **released, next_attempt_at=retry_at, last_error="HTTP 503", first_failure_at=started
    )
    assert after[rows[3]["id"]] == dict(rows[3], claimed_until=lease_until, claimed_by="s2", lease_generation=1)

    # A second failure keeps the first one's time (by then the other lease of e2 has run out too).
    async with engine.begin() as connection:
        lane = await dialects.claim_lane(connection, retry_at, second_lease_until, "s2", "e2", 10, COLUMNS)
        generation = {id_: generation for id_, _, generation in lane}[rows[2]["id"]]
        await dialects.record_outcomes(
            connection,
            [(rows[2]["id"], 2, retry_at, 0.5, 503, "", "HTTP 503", False, "acct", "e2")],
            [(PENDING, 2, retry_at + timedelta(minutes=1), "HTTP 503", retry_at, retry_at, rows[2]["id"], "s2", 2)],
        )
    [again] = await stored(engine, DELIVERIES, DELIVERIES.c.id == rows[2]["id"])
    assert (generation, again["attempt_count"], again["first_failure_at"]) == (2, 2, started)

    # Leases: renewed where held, the others reported lost.
    async with engine.begin() as connection:
        lost = await dialects.renew_leases(connection, "s1", [rows[4]["id"], rows[0]["id"]], second_lease_until)
    assert lost == [rows[0]["id"]]
    [leased] = await stored(engine, DELIVERIES, DELIVERIES.c.id == rows[4]["id"])
    assert (leased["claimed_by"], leased["claimed_until"]) == ("s1", second_lease_until)


async def test_failure_streaks_start_once_and_end_on_success(engine):
    first, second = datetime.now(UTC), datetime.now(UTC) + timedelta(seconds=5)
    async with engine.begin() as connection:
        assert await dialects.record_failure_streak(connection, "e1", first) == first
        assert await dialects.record_failure_streak(connection, "e1", second) == first
        assert await dialects.record_failure_streak(connection, "e2", second) == second
    async with engine.begin() as connection:
        await dialects.end_failure_streaks(connection, ["e1"], second)
    assert sorted((row["endpoint_id"], row["failing_since"]) for row in await stored(engine, ENDPOINT_HEALTH)) == [
        ("e1", None),
        ("e2", second),
    ]


async def test_rows_naming_a_column_the_table_lacks_are_refused(engine):
    """What a column renamed in the model but not in the code that fills its rows looks like: without
    the check, SQLAlchemy would drop the value on PostgreSQL (and SQLite's SQL would not say why)."""
    row = delivery_row("e1", "1", datetime.now(UTC), 0)
    row["trace_parent"] = row.pop("traceparent")
    async with engine.begin() as connection:
        with pytest.raises(ValueError, match="not columns of deliveries: trace_parent"):
            await dialects.insert_deliveries(connection, [row])
    assert await stored(engine, DELIVERIES) == []
