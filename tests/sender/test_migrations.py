"""The sender's Alembic migrations build exactly the tables its models describe, on both databases,
and applying them again changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, Table, inspect, text

from services.common.db import create_engine, upgrade, upgrade_async
from services.sender.models import Base
from services.sender.server import MIGRATIONS, VERSION_TABLE
from services.sender.store import DeliveryStore, NewDelivery, encode_event


async def test_migrations_match_the_models(database_url):
    await upgrade_async(database_url, MIGRATIONS, VERSION_TABLE)
    await upgrade_async(database_url, MIGRATIONS, VERSION_TABLE)  # idempotent on restart
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:

            def differences(sync_connection):
                context = MigrationContext.configure(
                    sync_connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
                )
                return compare_metadata(context, Base.metadata)

            def tables(sync_connection):
                return set(inspect(sync_connection).get_table_names())

            assert await connection.run_sync(differences) == []
            assert {"deliveries", "attempts", "endpoint_health", VERSION_TABLE} <= await connection.run_sync(tables)
    finally:
        await engine.dispose()


async def test_existing_deliveries_take_their_application_from_their_event(database_url):
    """0002 (issue 8, finding 6): deliveries stored under the old key (event id, endpoint) get the
    application of their stored event, and the new key takes events of other applications."""
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS, VERSION_TABLE, "0001")
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    old = dict(
        account_id="acct", endpoint_id="endpoint-1", event_id="42", traceparent="", status="SUCCEEDED",
        attempt_count=1, claimed_by="", last_error="", created_at=now, updated_at=now,
    )  # fmt: skip
    rows = [
        dict(old, id="with-application", event=encode_event({"id": "42", "application": "inventory"})),
        dict(old, id="without-application", event_id="43", event=encode_event({"id": "43"})),
    ]
    table = Table("deliveries", MetaData(), *(Column(name) for name in rows[0]))
    try:
        async with engine.begin() as connection:
            await connection.execute(table.insert(), rows)
        await upgrade_async(database_url, MIGRATIONS, VERSION_TABLE)

        async with engine.connect() as connection:
            result = await connection.execute(text("SELECT id, application FROM deliveries ORDER BY id"))
            assert list(result) == [("with-application", "inventory"), ("without-application", "")]
        store = DeliveryStore(engine, "sender-test", lease_seconds=30)
        ids, created = await store.enqueue(
            [
                NewDelivery("acct", "endpoint-1", "inventory", "42", encode_event({"id": "42"})),  # the old one
                NewDelivery("acct", "endpoint-1", "billing", "42", encode_event({"id": "42"})),  # another event
            ]
        )
        assert ids[("inventory", "42", "endpoint-1")] == "with-application"
        assert [d.id for d in created] == [ids[("billing", "42", "endpoint-1")]]
    finally:
        await engine.dispose()
