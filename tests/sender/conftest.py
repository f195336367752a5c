"""Fixtures of the sender's tests: a scriptable receiver, the real registry and the real sender, on the
test's database. The helpers they use are in tests/helpers/sender.py."""

from __future__ import annotations

import pytest_asyncio

from tests.helpers.registry import running_registry
from tests.helpers.sender import receiving, running_sender


@pytest_asyncio.fixture
async def receiver():
    """A scriptable HTTP receiver on loopback (see tests/helpers/sender.py, Receiver)."""
    async with receiving() as receiver:
        yield receiver


@pytest_asyncio.fixture
async def registry(database_url):
    """The real registry, on the test's database (its tables beside the sender's)."""
    async with running_registry(database_url, registry_change_poll_seconds=0.05) as (_server, port):
        yield f"127.0.0.1:{port}"


@pytest_asyncio.fixture
async def sender(database_url, registry):
    """The real sender (TEST_SETTINGS of tests/helpers/sender.py) on the test's database."""
    async with running_sender(database_url, registry) as running:
        yield running
