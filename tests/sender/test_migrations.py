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


async def test_existing_attempts_take_their_account_and_endpoint_from_their_delivery(database_url):
    """0007: attempts logged before it name their delivery's account and endpoint after it, so an
    endpoint's health (BatchGetEndpointStats) counts them."""
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS, VERSION_TABLE, "0006")
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    delivery = dict(
        id="delivery-1", account_id="acct", endpoint_id="endpoint-1", application="inventory", event_id="42",
        event=encode_event({"id": "42"}), traceparent="", status="SUCCEEDED", attempt_count=1, claimed_by="",
        last_error="", lease_generation=0, created_at=now, updated_at=now,
    )  # fmt: skip
    attempt = dict(
        delivery_id="delivery-1", number=1, started_at=now, latency_seconds=0.1, http_status=200, response_body="",
        error="", succeeded=True,
    )  # fmt: skip
    try:
        async with engine.begin() as connection:
            await connection.execute(
                Table("deliveries", MetaData(), *(Column(n) for n in delivery)).insert(), [delivery]
            )
            await connection.execute(Table("attempts", MetaData(), *(Column(n) for n in attempt)).insert(), [attempt])
        await upgrade_async(database_url, MIGRATIONS, VERSION_TABLE)
        async with engine.connect() as connection:
            result = await connection.execute(text("SELECT delivery_id, account_id, endpoint_id FROM attempts"))
            assert list(result) == [("delivery-1", "acct", "endpoint-1")]
        store = DeliveryStore(engine, "sender-test", lease_seconds=30)
        figures = await store.endpoint_figures("acct", ["endpoint-1"])
        assert figures["endpoint-1"].attempts == 1 and figures["endpoint-1"].last_attempt_succeeded
        assert await store.endpoint_figures("another", ["endpoint-1"]) == {}
    finally:
        await engine.dispose()
