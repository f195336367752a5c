"""The in-process delivery workers: deliveries handed over by Deliver (the hot path) or found due by
the poller run as tasks, at most `concurrency` at once overall and `per_endpoint` at once per endpoint,
so a slow or dead endpoint only ever holds its own slots.

A task waits for its endpoint's slot before it takes a global one: a backlog for one endpoint sits
waiting without starving the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from services.common.logging import get_logger
from services.sender.metrics import IN_FLIGHT
from services.sender.models import Delivery
from services.sender.store import DeliveryStore

log = get_logger(__name__)


class Dispatcher:
    def __init__(
        self,
        deliver_one: Callable[[str, Delivery | None], Awaitable[None]],
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

    def submit(
        self, delivery_id: str, endpoint_id: str, stored: Delivery | None = None, over_backlog: bool = False
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

    def _start(self, delivery_id: str, endpoint_id: str, stored: Delivery | None) -> asyncio.Task:
        task = asyncio.create_task(self._run(delivery_id, endpoint_id, stored), name=f"deliver-{delivery_id}")
        self._tasks[delivery_id] = task
        IN_FLIGHT.set(len(self._tasks))
        task.add_done_callback(lambda _task: self._finished(delivery_id, endpoint_id))
        return task

    def _finished(self, delivery_id: str, endpoint_id: str) -> None:
        self._tasks.pop(delivery_id, None)
        IN_FLIGHT.set(len(self._tasks))
        if delivery_id in self._again:
            self._again.discard(delivery_id)
            if not self._closed:
                self.submit(delivery_id, endpoint_id)

    def wake(self) -> None:
        """Makes the poller look now (e.g. after a retry was scheduled)."""
        self._wake.set()

    async def _run(self, delivery_id: str, endpoint_id: str, stored: Delivery | None = None) -> None:
        semaphore, users = self._endpoints.get(endpoint_id) or (asyncio.Semaphore(self._per_endpoint_limit), 0)
        self._endpoints[endpoint_id] = (semaphore, users + 1)
        try:
            async with semaphore, self._global:
                await self._deliver_one(delivery_id, stored)
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
                    found = await self._store.claim_due(min(room, self._poll_batch))
                    claimed = len(found)
                    for delivery in found:
                        # Claimed for room there was a moment ago; a hot path that filled it
                        # since makes the backlog overshoot by at most one batch.
                        self.submit(delivery.id, delivery.endpoint_id, delivery, over_backlog=True)
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
