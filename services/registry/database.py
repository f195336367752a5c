"""The registry's database: sessions for reading, and write transactions that record what they
changed in the change log before they commit.

Writes are serialised (an in-process lock, plus a transaction-scoped advisory lock on PostgreSQL),
so change-log sequence numbers are committed in the order they are assigned: a follower that has
read up to N can never later find a smaller number appear. Registry writes are rare (people editing
endpoints and filters, applications starting), so serialising them costs nothing that matters.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.common import db
from services.common.db import utcnow
from services.registry.models import Change

#: The PostgreSQL NOTIFY channel followers LISTEN on; the payload is the newest sequence number.
NOTIFY_CHANNEL = "hooks_registry_changes"
#: pg_advisory_xact_lock key serialising registry writes across replicas ("hooksreg").
WRITE_LOCK_KEY = 0x686F6F6B73726567

APPLICATION = "application"
ENDPOINT = "endpoint"
FILTER = "filter"


@dataclass(frozen=True)
class ChangeNote:
    kind: str
    resource_id: str
    account_id: str = ""


@dataclass
class Write:
    """One write transaction: its session, and the changes to log when it commits."""

    session: AsyncSession
    changes: list[ChangeNote] = field(default_factory=list)
    #: The change-log sequence of its last change, once committed (0: it changed nothing).
    sequence: int = 0

    def record(self, kind: str, resource_id: str, account_id: str = "") -> None:
        note = ChangeNote(kind, resource_id, account_id)
        if note not in self.changes:
            self.changes.append(note)


class Database:
    def __init__(self, url: str, **engine_kwargs: Any):
        self.url = url
        self.engine: AsyncEngine = db.create_engine(url, **engine_kwargs)
        self.sessions = db.sessionmaker(self.engine)
        self.is_sqlite = db.is_sqlite(url)
        self._write_lock = asyncio.Lock()
        #: Called after a write commits, with what it changed (cache invalidation, waking followers).
        self.committed_listeners: list[Callable[[list[ChangeNote]], None]] = []
        #: Awaited after a write commits (outside the write lock), with its sequence, before the write
        #: returns: the change follower waits there until this replica's change streams have sent it.
        self.published: Callable[[int], Awaitable[None]] | None = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Write]:
        """A transaction: everything in it commits with its change-log rows, or nothing does."""
        async with self._write_lock:
            async with self.sessions() as session:
                async with session.begin():
                    if not self.is_sqlite:
                        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
                    unit = Write(session)
                    yield unit
                    if unit.changes:
                        await session.flush()
                        now = utcnow()
                        await session.execute(
                            insert(Change),
                            [
                                {
                                    "kind": c.kind,
                                    "resource_id": c.resource_id,
                                    "account_id": c.account_id,
                                    "create_time": now,
                                }
                                for c in unit.changes
                            ],
                        )
                        # Writes are serialised: the newest sequence is this write's last.
                        unit.sequence = (await session.execute(select(func.max(Change.sequence)))).scalar_one()
                        if not self.is_sqlite:
                            await session.execute(
                                text("SELECT pg_notify(:channel, :payload)"),
                                {"channel": NOTIFY_CHANNEL, "payload": str(unit.sequence)},
                            )
        if unit.changes:
            for listener in self.committed_listeners:
                listener(unit.changes)
            if self.published is not None:
                await self.published(unit.sequence)

    async def dispose(self) -> None:
        await self.engine.dispose()
