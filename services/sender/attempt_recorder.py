"""Group commit for the attempt log and the deliveries' outcomes: attempts that finish at about the
same time are written in one transaction (the attempts and their deliveries' new status, in bulk), so
the database sees a few commits a second rather than one per delivery."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy.exc import DBAPIError

from services.common.background import BackgroundTask
from services.common.logging import get_logger
from services.sender.store import AttemptResult, DeliveryStore

log = get_logger(__name__)

MAX_BATCH = 500
#: Under load (the last batch held more than one attempt), how long the recorder waits for more
#: before it writes: a few milliseconds of latency buy transactions several times larger. The
#: workers' slots are free meanwhile (they are held only while an attempt is on the wire).
LINGER_SECONDS = 0.005
#: Waits before writing a batch again after a database error (then the error is the attempts').
WRITE_RETRY_DELAYS = (0.05, 0.2, 1.0)


class AttemptRecorder:
    def __init__(self, store: DeliveryStore):
        self._store = store
        self._queue: asyncio.Queue[tuple[AttemptResult, asyncio.Future]] = asyncio.Queue()
        self._writer = BackgroundTask("sender-attempt-recorder", self._write_forever)

    def start(self) -> None:
        self._writer.start()

    async def close(self) -> None:
        await self._writer.close()
        while not self._queue.empty():
            _result, future = self._queue.get_nowait()
            if not future.done():
                future.cancel()

    def submit(self, result: AttemptResult) -> asyncio.Future:
        """Queues the attempt for the next transaction; the future is done once it is committed, with
        (after a failure) since when its endpoint has failed."""
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((result, future))
        return future

    async def record(self, result: AttemptResult) -> datetime | None:
        """Returns once the attempt is committed: after a failure, since when its endpoint has failed."""
        return await self.submit(result)

    async def _record(self, results: list[AttemptResult]) -> list[datetime | None]:
        """Writes the batch, trying again after a transient database error (a deadlock, a dropped
        connection): an attempt whose outcome is not written is sent again once its lease runs out."""
        for delay in WRITE_RETRY_DELAYS:
            try:
                return await self._store.record_attempts(results)
            except DBAPIError as exc:
                log.warning(
                    "recording attempts failed; trying again",
                    attempts=len(results),
                    error=str(exc.orig or exc).splitlines()[0],
                )
                await asyncio.sleep(delay)
        return await self._store.record_attempts(results)

    async def _write_forever(self) -> None:
        busy = False
        while True:
            batch = [await self._queue.get()]
            if busy and self._queue.qsize() < MAX_BATCH:
                try:
                    await asyncio.sleep(LINGER_SECONDS)
                except asyncio.CancelledError:
                    batch[0][1].cancel()
                    raise
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            busy = len(batch) > 1
            try:
                outcomes = await self._record([result for result, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:
                log.exception("recording attempts failed", attempts=len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
