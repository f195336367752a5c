"""The sender's Alembic migrations build exactly the tables its models describe, on both databases,
and applying them again changes nothing."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from services.common.db import create_engine, upgrade_async
from services.sender.models import Base
from services.sender.server import MIGRATIONS, VERSION_TABLE


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
