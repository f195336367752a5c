"""Fixtures of the matcher's tests: this test's topics on the session's broker, a receiver, the real
registry (with `policies` registered) and the real sender. The helpers are in tests/helpers/matcher.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.helpers.matcher import Kafka, Receiver, Registry, Sender, receiving


@pytest_asyncio.fixture
async def broker(kafka, topics) -> Kafka:
    return Kafka(kafka.bootstrap_servers, topics["outbox"], topics["dlq"])


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


@pytest_asyncio.fixture
async def registry(sqlite_url) -> AsyncIterator[Registry]:
    """The real registry (SQLite: the matcher keeps no tables; the registry's tests cover PostgreSQL),
    with the application `policies` registered."""
    registry = Registry(sqlite_url)
    await registry.start()
    await registry.register()
    try:
        yield registry
    finally:
        await registry.close()


@pytest_asyncio.fixture
async def sender_unstarted(registry, broker, tmp_path) -> AsyncIterator[Sender]:
    sender = Sender(f"sqlite:///{tmp_path / 'sender.db'}", registry.target, broker.settings())
    try:
        yield sender
    finally:
        await sender.stop()


@pytest_asyncio.fixture
async def sender(sender_unstarted) -> Sender:
    await sender_unstarted.start()
    return sender_unstarted
