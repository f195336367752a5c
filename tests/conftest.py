"""Fixtures every test may use: real PostgreSQL and SQLite databases, a real Kafka-compatible broker.

- `database_url`: parametrised over SQLite and PostgreSQL; a fresh, empty database per test.
- `pg_url` / `sqlite_url`: one of them only.
- `kafka`: a Tansu broker for the whole session, on a free port.
- `topics`: unique topic names for one test (outbox and dlq), created on `kafka`.
Tests that need services start them in-process on port 0, talking over real channels.
"""

from __future__ import annotations

import uuid

import pytest

from services.common.broker import EmbeddedBroker, ensure_topics
from tests.helpers.databases import drop_pg_database, make_pg_database


@pytest.fixture
def pg_url():
    """A PostgreSQL database of this test's own, dropped after it."""
    name, url = make_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path):
    """A SQLite database file of this test's own."""
    return f"sqlite:///{tmp_path / 'hooks.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hooks.db'}"
        return
    name, url = make_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    """A real Kafka-compatible broker (Tansu) for the whole test session."""
    log = tmp_path_factory.mktemp("kafka") / "broker.log"
    broker = EmbeddedBroker().start(log_path=str(log))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def topics(kafka):
    """Unique outbox and dead-letter topics for one test, created on the session's broker."""
    suffix = uuid.uuid4().hex[:8]
    names = {"outbox": f"hooks.outbox.{suffix}", "dlq": f"hooks.outbox.dlq.{suffix}"}
    ensure_topics({"bootstrap.servers": kafka.bootstrap_servers}, list(names.values()), partitions=2)
    return names
