"""The in-process delivery workers: deliveries handed over by Deliver (the hot path) or found due by
the poller run as tasks, at most `concurrency` at once overall and `per_endpoint` at once per endpoint,
so a slow or dead endpoint only ever holds its own slots.

A task waits for its endpoint's slot before it takes a global one: a backlog for one endpoint sits
waiting without starving the others. The slots are held only while the attempt is on the wire (the
worker enters them around the send): writing down its outcome happens after, so an endpoint's slots
are not idle while the attempt log commits.

What does not fit in the backlog waits in the database, due; the poller takes it as room frees up
(woken as soon as a batch's worth has, rather than at its next interval).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from services.common.logging import get_logger
from services.sender.metrics import IN_FLIGHT
from services.sender.store import DeliveryStore, QueuedDelivery

log = get_logger(__name__)


class Dispatcher:
    def __init__(
        self,
        deliver_one: Callable[[str, QueuedDelivery | None, contextlib.AbstractAsyncContextManager], Awaitable[None]],
        store: DeliveryStore,
        concurrency: int,
        per_endpoint: int,
        poll_interval: float,
        backlog: int | None = None,
    ):
        self._deliver_one = deliver_one
        self._store = store
        self._global = asyncio.Semaphore(concurrency)
        self._per_endpoint_limit = per_endpoint
        self._endpoints: dict[str, tuple[asyncio.Semaphore, int]] = {}
        self._poll_interval = poll_interval
        #: Most deliveries held in memory (running or waiting for a slot); beyond, they wait in the DB.
        self.backlog = backlog or max(1000, concurrency * 50)
        self._poll_batch = max(concurrency * 2, 16)
        self._tasks: dict[str, asyncio.Task] = {}
        self._wake = asyncio.Event()
        self._poller: asyncio.Task | None = None
        self._closed = False
        self._again: set[str] = set()
        self._overflowed = False  # deliveries were left in the database for want of room
        self._room_freed = asyncio.Event()
        # Read at scrape time rather than set twice per delivery.
        IN_FLIGHT.set_function(lambda: len(self._tasks))

    def start(self) -> None:
        self._poller = asyncio.create_task(self._poll_forever(), name="sender-poller")

    async def close(self, grace: float = 0.0) -> None:
        """Stops polling and taking work, lets attempts in flight finish for up to `grace` seconds,
        then cancels the rest and gives their leases back so another sender takes them at once."""
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller
        if self._tasks and grace > 0:
            await asyncio.wait(list(self._tasks.values()), timeout=grace)
        left = dict(self._tasks)
        for task in left.values():
            task.cancel()
        for task in left.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if left:
            with contextlib.suppress(Exception):
                await self._store.release(list(left))

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def has_room(self) -> bool:
        return len(self._tasks) < self.backlog

    def room(self) -> int:
        """How many more deliveries the backlog takes now."""
        return 0 if self._closed else max(0, self.backlog - len(self._tasks))

    async def wait_for_room(self, wanted: int, timeout: float) -> int:
        """Waits up to `timeout` seconds for room for `wanted` deliveries; returns the room there is."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (room := self.room()) < wanted and not self._closed:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            self._room_freed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._room_freed.wait(), left)
        return self.room()

    def left_to_poller(self) -> None:
        """Deliveries were stored without a lease for want of room: the poller takes them as room
        frees up."""
        self._overflowed = True

    def submit(
        self, delivery_id: str, endpoint_id: str, stored: QueuedDelivery | None = None, over_backlog: bool = False
    ) -> bool:
        """Hands a delivery (leased by this sender; `stored` is its row when the caller has it) to the
        workers; False when the backlog is full (the caller then gives the lease back). One that is
        being worked on already runs again once that run ends (it may have come due again)."""
        if delivery_id in self._tasks:
            self._again.add(delivery_id)
            return True
        if self._closed or not (over_backlog or self.has_room()):
            return False
        self._start(delivery_id, endpoint_id, stored)
        return True

    async def run_now(self, delivery_id: str, endpoint_id: str) -> None:
        """Submits the delivery and waits for its attempt (within the same limits as any other)."""
        task = self._tasks.get(delivery_id) or self._start(delivery_id, endpoint_id, None)
        await asyncio.shield(task)

    def _start(self, delivery_id: str, endpoint_id: str, stored: QueuedDelivery | None) -> asyncio.Task:
        task = asyncio.create_task(self._run(delivery_id, endpoint_id, stored))
        self._tasks[delivery_id] = task
        task.add_done_callback(lambda _task: self._finished(delivery_id, endpoint_id))
        return task

    def _finished(self, delivery_id: str, endpoint_id: str) -> None:
        self._tasks.pop(delivery_id, None)
        self._room_freed.set()
        if self._overflowed and self.backlog - len(self._tasks) >= min(self._poll_batch, max(1, self.backlog // 2)):
            self._overflowed = False
            self._wake.set()
        if delivery_id in self._again:
            self._again.discard(delivery_id)
            if not self._closed:
                self.submit(delivery_id, endpoint_id)

    def wake(self) -> None:
        """Makes the poller look now (e.g. after a retry was scheduled)."""
        self._wake.set()

    async def _run(self, delivery_id: str, endpoint_id: str, stored: QueuedDelivery | None = None) -> None:
        semaphore, users = self._endpoints.get(endpoint_id) or (asyncio.Semaphore(self._per_endpoint_limit), 0)
        self._endpoints[endpoint_id] = (semaphore, users + 1)
        try:
            await self._deliver_one(delivery_id, stored, _Slots(semaphore, self._global))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one delivery's bug must not stop the others
            log.exception("delivery attempt crashed", delivery_id=delivery_id)
        finally:
            semaphore, users = self._endpoints[endpoint_id]
            if users <= 1:
                del self._endpoints[endpoint_id]
            else:
                self._endpoints[endpoint_id] = (semaphore, users - 1)

    async def _poll_forever(self) -> None:
        """Claims deliveries that came due (retries, or another sender's whose lease ran out)."""
        while True:
            claimed = 0
            try:
                room = self.backlog - len(self._tasks)
                if room > 0:
                    wanted = min(room, self._poll_batch)
                    found = await self._store.claim_due(wanted)
                    claimed = len(found)
                    if claimed == wanted:
                        self._overflowed = True  # there may be more: look again once there is room
                    for delivery in found:
                        # Claimed for room there was a moment ago; a hot path that filled it
                        # since makes the backlog overshoot by at most one batch.
                        self.submit(delivery.id, delivery.endpoint_id, delivery, over_backlog=True)
                else:
                    self._overflowed = True
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the database may be briefly away; keep polling
                log.exception("polling for due deliveries failed")
            if claimed >= self._poll_batch:
                await asyncio.sleep(0)
                continue
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)


class _Slots:
    """An endpoint's slot, then a global one, for as long as the `async with` lasts."""

    __slots__ = ("_endpoint", "_global")

    def __init__(self, endpoint: asyncio.Semaphore, global_: asyncio.Semaphore):
        self._endpoint = endpoint
        self._global = global_

    async def __aenter__(self) -> None:
        await self._endpoint.acquire()
        try:
            await self._global.acquire()
        except BaseException:
            self._endpoint.release()
            raise

    async def __aexit__(self, *_exc) -> None:
        self._global.release()
        self._endpoint.release()
