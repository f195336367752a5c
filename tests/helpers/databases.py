"""Throwaway PostgreSQL databases for tests, on the server HOOKS_TEST_POSTGRES_URL names (tools/ensure-postgres
starts one): `name, url = make_pg_database()` ... `drop_pg_database(name)`."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg

PG_ADMIN_URL = os.environ.get("HOOKS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def make_pg_database() -> tuple[str, str]:
    """Creates an empty database of a fresh name; returns (name, URL)."""
    name = f"hooks_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def drop_pg_database(name: str) -> None:
    """Drops the database, closing its connections first."""
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
