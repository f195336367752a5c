"""Following the change log: what WatchChanges streams and what keeps this replica's caches fresh.

One follower per process reads new `changes` rows in sequence order, tells the caches what they
touched, and wakes the streams waiting for news. It is woken by

- a commit of this process (immediately),
- on PostgreSQL, a NOTIFY from any replica's commit (asyncpg `add_listener` on a connection of its own),
- and otherwise a poll every `registry_change_poll_seconds` (also the safety net when the LISTEN
  connection is down; with it up, polls are 20 times rarer).

A write returns only once every change stream open on this replica has sent its changes (at most
STREAMED_WITHIN seconds; a stream that is slower does not hold writes up longer), so a follower
connected here (the matcher's route cache, the sender's endpoint cache) has been told of a change
before its author can act on it: a message produced right after a filter change is routed by the
new filter, although the matcher takes each message as soon as it arrives. A follower connected to
another replica hears of it through NOTIFY, a few milliseconds later.

It also prunes rows older than the retention in the background, remembering the highest pruned
sequence so a stream asking for older changes is told it missed some (OUT_OF_RANGE) instead of
silently skipping them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

import asyncpg
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import OutOfRange
from services.common.logging import get_logger
from services.registry.database import NOTIFY_CHANNEL, ChangeNote, Database
from services.registry.models import Change, ChangeLogState

log = get_logger(__name__)

READ_BATCH = 500
#: Longest a write waits for this replica's change streams to have sent it (seconds).
STREAMED_WITHIN = 1.0


class ChangeFollower:
    def __init__(
        self,
        database: Database,
        poll_seconds: float,
        retention_seconds: float,
        prune_interval_seconds: float,
        on_changes: Callable[[list[ChangeNote]], None],
    ):
        self.database = database
        self.poll_seconds = poll_seconds
        self.retention_seconds = retention_seconds
        self.prune_interval_seconds = prune_interval_seconds
        self.on_changes = on_changes
        #: The highest sequence this process has read and acted on.
        self.known_sequence = 0
        self._wake = asyncio.Event()
        self._advanced = asyncio.Condition()
        self._tasks: list[asyncio.Task] = []
        self._listener: asyncpg.Connection | None = None
        self._closing = False
        #: Each open change stream (WatchChanges) -> the last sequence it has sent.
        self._streams: dict[object, int] = {}
        self._streamed = asyncio.Condition()

    # ---- lifecycle

    async def start(self) -> None:
        self.known_sequence = await self.current_sequence()
        self.database.committed_listeners.append(lambda _changes: self.wake())
        self.database.published = self.until_streamed
        self._tasks.append(asyncio.create_task(self._follow(), name="registry-change-follower"))
        self._tasks.append(asyncio.create_task(self._prune_forever(), name="registry-change-pruner"))
        if not self.database.is_sqlite:
            self._tasks.append(asyncio.create_task(self._listen_forever(), name="registry-change-listener"))

    async def stop(self) -> None:
        self._closing = True
        pending = set(self._tasks)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=5)
        for task in self._tasks:
            if not task.cancelled() and task.exception() is not None:
                log.warning("change-log task failed", task=task.get_name(), error=str(task.exception()))
        self._tasks.clear()
        async with self._advanced:
            self._advanced.notify_all()
        async with self._streamed:
            self._streamed.notify_all()

    @property
    def closing(self) -> bool:
        return self._closing

    def wake(self) -> None:
        self._wake.set()

    # ---- reading

    async def current_sequence(self) -> int:
        """The newest committed sequence (or the pruned mark when the log is empty)."""
        async with self.database.read() as session:
            newest = (await session.execute(select(func.max(Change.sequence)))).scalar_one()
            pruned = await self._pruned_through(session)
        return max(newest or 0, pruned)

    async def _pruned_through(self, session: AsyncSession) -> int:
        value = (await session.execute(select(ChangeLogState.pruned_through).where(ChangeLogState.id == 1))).scalar()
        return value or 0

    async def check_resumable(self, after_sequence: int) -> None:
        async with self.database.read() as session:
            pruned = await self._pruned_through(session)
        if after_sequence < pruned:
            raise OutOfRange(
                f"changes up to {pruned} were pruned from the change log, so some after {after_sequence} are lost; "
                "drop what you cached and watch again from after_sequence=0"
            )

    async def read_after(self, after_sequence: int, limit: int = READ_BATCH) -> list[Change]:
        async with self.database.read() as session:
            rows = await session.execute(
                select(Change).where(Change.sequence > after_sequence).order_by(Change.sequence).limit(limit)
            )
            return list(rows.scalars())

    async def wait_beyond(self, sequence: int, timeout: float) -> None:
        """Returns when this process has seen a change after `sequence`, or after `timeout` seconds."""
        async with self._advanced:
            if self.known_sequence > sequence or self._closing:
                return
            # asyncio.timeout, not asyncio.wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the wait completes, and the task then never stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._advanced.wait_for(lambda: self.known_sequence > sequence or self._closing)

    # ---- the streams, and writes waiting for them

    @contextlib.asynccontextmanager
    async def stream(self, after_sequence: int) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
        """An open change stream starting after `after_sequence`; call what it yields with each
        sequence once it has been sent."""
        token = object()
        self._streams[token] = after_sequence

        async def sent(sequence: int) -> None:
            async with self._streamed:
                self._streams[token] = sequence
                self._streamed.notify_all()

        try:
            yield sent
        finally:
            del self._streams[token]
            async with self._streamed:
                self._streamed.notify_all()

    async def until_streamed(self, sequence: int, timeout: float = STREAMED_WITHIN) -> None:
        """Returns once every change stream open now has sent the changes up to `sequence` (or closed),
        or after `timeout` seconds."""
        waiting_on = [token for token, sent in self._streams.items() if sent < sequence]
        if not waiting_on:
            return

        def done() -> bool:
            return self._closing or all(self._streams.get(token, sequence) >= sequence for token in waiting_on)

        async with self._streamed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._streamed.wait_for(done)

    # ---- the follower

    async def _follow(self) -> None:
        while not self._closing:
            timeout = self.poll_seconds if self._listener is None else self.poll_seconds * 20
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be briefly away; poll again
                log.warning("reading the change log failed", error=str(exc))
                await asyncio.sleep(self.poll_seconds)

    async def _catch_up(self) -> None:
        while True:
            rows = await self.read_after(self.known_sequence)
            if not rows:
                return
            self.on_changes([ChangeNote(r.kind, r.resource_id, r.account_id) for r in rows])
            async with self._advanced:
                self.known_sequence = rows[-1].sequence
                self._advanced.notify_all()
            if len(rows) < READ_BATCH:
                return

    # ---- LISTEN/NOTIFY (PostgreSQL)

    async def _listen_forever(self) -> None:
        dsn = make_url(self.database.url).set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._closing:
            lost = asyncio.Event()
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(dsn, timeout=10)
                connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, lambda *_args: self.wake())
                self._listener = connection
                self.wake()  # catch up on anything committed while not listening
                await lost.wait()
                log.warning("change-log LISTEN connection lost; polling until it is back")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - PostgreSQL away; polling covers it
                log.warning("cannot LISTEN for registry changes", error=str(exc))
            finally:
                self._listener = None
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(min(5.0, self.poll_seconds * 8))

    # ---- pruning

    async def _prune_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.prune_interval_seconds)
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - try again next interval
                log.warning("pruning the change log failed", error=str(exc))

    async def prune(self) -> int:
        """Deletes changes older than the retention; returns how many."""
        cutoff = utcnow() - timedelta(seconds=self.retention_seconds)
        async with self.database.write() as unit:
            session = unit.session
            newest_old = (
                await session.execute(select(func.max(Change.sequence)).where(Change.create_time < cutoff))
            ).scalar_one()
            if not newest_old:
                return 0
            # A DELETE's result is a CursorResult (Session.execute is typed for every statement).
            result = cast(CursorResult[Any], await session.execute(delete(Change).where(Change.sequence <= newest_old)))
            await session.execute(
                update(ChangeLogState)
                .where(ChangeLogState.id == 1, ChangeLogState.pruned_through < newest_old)
                .values(pruned_through=newest_old)
            )
        log.info("pruned the change log", through_sequence=newest_old, rows=result.rowcount)
        return result.rowcount
