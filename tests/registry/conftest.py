"""A real registry per test (in-process, port 0, real channel), on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest_asyncio

from services.common.channels import channel
from tests.helpers.registry import Registry, running_registry


@pytest_asyncio.fixture
async def registry(database_url):
    async with running_registry(database_url, registry_change_poll_seconds=0.1) as (server, port):
        async with channel(f"127.0.0.1:{port}") as ch:
            yield Registry(port, server, ch)
