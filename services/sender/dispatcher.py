"""The scheduler of the lanes (`services/sender/lanes.py`): deliveries handed over by Deliver (the hot
path) or claimed by the poller go to their endpoint's lane; `concurrency` long-lived workers take the
ready lanes in turn (round-robin), one delivery at a time each, so no lane's backlog can take the room
of another's. A worker is busy only while the attempt is on the wire: its outcome is committed by the
attempt recorder meanwhile, and the delivery is held (its lease renewed) until then.

What a lane has no room for waits in the database, due; the poller claims per lane, a bounded number
of each endpoint's (never "the oldest rows" across all lanes), skipping lanes that are full or whose
breaker is open. Leases of everything held are renewed in one statement every `renew_interval`
seconds; a lease found lost is dropped from its lane (another sender has the delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from sqlalchemy.exc import DBAPIError

from services.common.db import utcnow
from services.common.logging import get_logger
from services.sender.lanes import BreakerSettings, CircuitBreaker, Held, Lane
from services.sender.metrics import IN_FLIGHT
from services.sender.store import DeliveryStore, QueuedDelivery

log = get_logger(__name__)


class Dispatcher:
    def __init__(
        self,
        deliver_one: Callable[[Held], Awaitable[asyncio.Future | None]],
        store: DeliveryStore,
        concurrency: int,
        per_endpoint: int,
        poll_interval: float,
        backlog: int | None = None,
        lane_backlog: int | None = None,
        renew_interval: float | None = None,
        breaker: BreakerSettings | None = None,
    ):
        self._deliver_one = deliver_one
        self._store = store
        self._concurrency = concurrency
        self._per_endpoint_limit = per_endpoint
        self._poll_interval = poll_interval
        #: Most deliveries held in memory over all lanes; beyond, they wait in the database.
        self.backlog = backlog or max(1000, concurrency * 50)
        #: Most deliveries held in memory for one lane (so a few lanes cannot fill the backlog).
        self.lane_backlog = lane_backlog or max(64, per_endpoint * 32)
        #: Most deliveries the poller claims for one lane at a time, and in all.
        self._claim_per_lane = max(16, per_endpoint * 4)
        self._poll_batch = max(concurrency * 4, 64)
        lease = store.lease.total_seconds()
        self._renew_interval = min(renew_interval or lease / 3, lease / 4)
        self._breaker = breaker or BreakerSettings()
        #: Attempts started and not yet committed (on the wire, or sent and being recorded), at most
        #: `concurrency`: what a kill can make a sender send twice.
        self._unsettled = asyncio.Semaphore(concurrency)
        self._held: dict[str, Held] = {}
        self._lanes: dict[str, Lane] = {}
        self._ring: asyncio.Queue[Lane] = asyncio.Queue()
        self._again: set[str] = set()
        #: Lanes that have deliveries waiting in the database (their mark: `_marks` when last left
        #: there). The hot path leases nothing for them until a poll finds them drained, so a lane's
        #: deliveries go out in the order they were accepted.
        self._overflowed: dict[str, int] = {}
        self._marks = 0
        self._wake = asyncio.Event()
        #: The poller was woken for every lane (not only for those with deliveries in the database).
        self._look_everywhere = False
        self._room_freed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._workers: list[asyncio.Task] = []
        self._closed = False
        IN_FLIGHT.set_function(lambda: len(self._held))

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work_forever(), name="sender-lane-worker") for _ in range(self._concurrency)
        ]
        self._tasks = [
            asyncio.create_task(self._poll_forever(), name="sender-poller"),
            asyncio.create_task(self._renew_forever(), name="sender-lease-renewal"),
        ]

    async def close(self, grace: float = 0.0) -> None:
        """Stops polling and taking work, lets attempts in flight finish for up to `grace` seconds,
        then cancels the rest and gives every lease still held back so another sender takes them at once."""
        self._closed = True
        for lane in self._lanes.values():
            lane.waiting.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        busy = [lane for lane in self._lanes.values() if lane.running]
        if busy and grace > 0:
            deadline = time.monotonic() + grace
            while any(lane.running for lane in busy) and time.monotonic() < deadline:
                self._room_freed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._room_freed.wait(), deadline - time.monotonic())
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        left = list(self._held)
        for held in self._held.values():
            for waiter in held.waiters:
                waiter.cancel()
        if left:
            with contextlib.suppress(Exception):
                await self._store.release(left)

    def has_room(self) -> bool:
        return len(self._held) < self.backlog

    def room(self) -> int:
        """How many more deliveries the backlog takes now (over all lanes)."""
        return 0 if self._closed else max(0, self.backlog - len(self._held))

    def rooms(self, endpoint_ids: Iterable[str]) -> dict[str, int]:
        """How many more deliveries each of these endpoints' lanes takes now, within the backlog's
        room (none for a lane that has some waiting in the database: those go first)."""
        total = self.room()
        rooms = {}
        for endpoint_id in endpoint_ids:
            lane = self._lanes.get(endpoint_id)
            if endpoint_id in self._overflowed:
                rooms[endpoint_id] = 0
                continue
            rooms[endpoint_id] = min(total, self.lane_backlog - (lane.size if lane else 0))
        return rooms

    async def wait_for_room(self, wanted: int, timeout: float) -> int:
        """Waits up to `timeout` seconds for room for `wanted` deliveries; returns the room there is."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.room() < wanted and not self._closed:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            self._room_freed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._room_freed.wait(), left)
        return self.room()

    def left_to_poller(self, endpoint_id: str | None = None) -> None:
        """Deliveries were stored without a lease for want of room: the poller takes them as their
        lane (`endpoint_id`; any lane when None) frees up."""
        if endpoint_id is not None:
            self._mark_overflowed(endpoint_id)
        else:
            self._look_everywhere = True
        self._wake.set()

    def _mark_overflowed(self, endpoint_id: str) -> None:
        self._marks += 1
        self._overflowed[endpoint_id] = self._marks

    def submit(
        self, delivery_id: str, endpoint_id: str, stored: QueuedDelivery | None = None, over_backlog: bool = False
    ) -> bool:
        """Hands a delivery (leased by this sender; `stored` is its row when the caller has it) to its
        lane; False when the backlog is full (the caller then gives the lease back). One that is held
        already runs again once that run ends (it may have come due again)."""
        if delivery_id in self._held:
            self._again.add(delivery_id)
            return True
        if self._closed or not (over_backlog or self.has_room()):
            return False
        self._add(Held(delivery_id, endpoint_id, stored))
        return True

    async def run_now(self, delivery_id: str, endpoint_id: str) -> None:
        """Submits the delivery and waits for its attempt (within the same limits as any other), but
        for an ordered endpoint whose failed head waits for its retry (minutes or hours away): the
        delivery goes after it, as the order promises, and the caller is answered at once."""
        held = self._held.get(delivery_id)
        if held is None:
            held = Held(delivery_id, endpoint_id, None)
            self._add(held)
        lane = held.lane
        if lane is not None and lane.held_back_until is not None and lane.waiting and lane.waiting[0] is not held:
            return
        done = asyncio.get_running_loop().create_future()
        held.waiters.append(done)
        await done

    def take_back(self, endpoint_id: str) -> list[str]:
        """The endpoint's deliveries are to go out from the database, in the order they arrived (its
        held ones are being let go, services/sender/pauses.py): its lane's waiting deliveries leave it
        (their ids are returned, for their leases to be given back), but for an ordered lane's failed
        head waiting for its retry, which still goes first; and the hot path leases nothing for the
        endpoint until the poller has drained it (call `left_to_poller` once they are due)."""
        self._mark_overflowed(endpoint_id)
        lane = self._lanes.get(endpoint_id)
        if lane is None:
            return []
        kept = lane.waiting[0] if lane.held_back_until is not None and lane.waiting else None
        leaving = [held for held in lane.waiting if held is not kept]
        lane.waiting.clear()
        if kept is not None:
            lane.waiting.append(kept)
        for held in leaving:
            self._again.discard(held.id)
            self._release(held)
        return [held.id for held in leaving]

    def wake(self) -> None:
        """Makes the poller look now, at every lane (e.g. after a retry was scheduled)."""
        self._look_everywhere = True
        self._wake.set()

    # -- lanes -----------------------------------------------------------------------------------

    def _lane(self, endpoint_id: str) -> Lane:
        lane = self._lanes.get(endpoint_id)
        if lane is None:
            lane = Lane(endpoint_id, self._per_endpoint_limit, CircuitBreaker(self._breaker))
            lane.offer = lambda: self._offer(lane)
            self._lanes[endpoint_id] = lane
        return lane

    def _add(self, held: Held) -> None:
        self._held[held.id] = held
        lane = self._lane(held.endpoint_id)
        held.lane = lane
        lane.waiting.append(held)
        self._offer(lane)

    def _offer(self, lane: Lane) -> None:
        """Queues the lane among the ready ones if it is ready; if time alone holds it back (a probe,
        a token, an ordered lane's retry), offers it again then."""
        if lane.in_ring or self._closed:
            return
        now = time.monotonic()
        if lane.ready(now):
            lane.in_ring = True
            self._ring.put_nowait(lane)
        elif (due := lane.next_ready_at(now)) is not None:
            if lane.wake_at is None or lane.wake_at > due:
                lane.wake_at = due
                asyncio.get_running_loop().call_later(max(0.0, due - now), self._wake_lane, lane)

    def _wake_lane(self, lane: Lane) -> None:
        lane.wake_at = None
        self._offer(lane)

    async def _work_forever(self) -> None:
        while True:
            lane = await self._ring.get()
            lane.in_ring = False
            if not lane.ready():
                self._offer(lane)
                continue
            held = lane.waiting.popleft()
            lane.running += 1
            if lane.bucket is not None:
                lane.bucket.take(time.monotonic())
            probe = lane.breaker.started()
            self._offer(lane)  # its next delivery goes behind the other ready lanes
            recorded = None
            try:
                await self._unsettled.acquire()
                try:
                    recorded = await self._deliver_one(held)
                finally:
                    if recorded is None:
                        self._unsettled.release()
                    else:
                        recorded.add_done_callback(self._settled)
            except asyncio.CancelledError:
                lane.running -= 1
                raise
            except Exception:
                log.exception("delivery attempt crashed", delivery_id=held.id)
            lane.running -= 1
            if recorded is None:
                if probe:
                    lane.breaker.probing = False
                self._release(held)
            else:
                lane.breaker.record(held.succeeded, time.monotonic())
                if lane.ordered and held.retry_at is not None:
                    self._hold_back(lane, held, held.retry_at, recorded)
                elif recorded.done():
                    self._release(held)
                else:
                    recorded.add_done_callback(functools.partial(self._release_recorded, held))
            self._offer(lane)
            self._room_freed.set()

    def _settled(self, _recorded: asyncio.Future) -> None:
        self._unsettled.release()

    def _hold_back(self, lane: Lane, held: Held, retry_at: datetime, recorded: asyncio.Future) -> None:
        """An ordered lane's delivery failed and is to be retried: it stays held, at the head of its
        lane, and the later ones wait until it has gone again (claimed anew by id then)."""
        held.delivery = None
        lane.hold_back(held, time.monotonic() + max(0.0, (retry_at - utcnow()).total_seconds()))

        def recorded_done(_done: asyncio.Future) -> None:
            for waiter in held.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            held.waiters.clear()

        recorded.add_done_callback(recorded_done)

    def _release_recorded(self, held: Held, _recorded: asyncio.Future) -> None:
        self._release(held)

    def _release(self, held: Held) -> None:
        """The delivery's outcome is committed (or no attempt was made): it is not held any more."""
        if self._held.get(held.id) is held:
            del self._held[held.id]
        for waiter in held.waiters:
            if not waiter.done():
                waiter.set_result(None)
        lane = self._lanes.get(held.endpoint_id)
        if lane is not None:
            if lane.endpoint_id in self._overflowed and lane.size <= self.lane_backlog // 2:
                self._wake.set()
            breaker = lane.breaker
            if lane.size == 0 and not lane.in_ring and not breaker.is_open and not breaker.failures_in_a_row:
                del self._lanes[lane.endpoint_id]
        self._room_freed.set()
        if held.id in self._again:
            self._again.discard(held.id)
            if not self._closed:
                self.submit(held.id, held.endpoint_id)

    # -- the poller and the lease renewal --------------------------------------------------------

    def _skipped_lanes(self) -> list[str]:
        """Lanes the general poll claims nothing for: full, their breaker open, or with deliveries
        waiting in the database (those are claimed lane by lane, `_claim_for_lanes`)."""
        limit = self.lane_backlog - self._claim_per_lane
        return [
            e for e, lane in self._lanes.items() if lane.size > limit or lane.breaker.is_open or e in self._overflowed
        ] + [e for e in self._overflowed if e not in self._lanes]

    async def _poll_forever(self) -> None:
        """Claims deliveries that came due: for each lane with deliveries waiting in the database, as
        many as it has room for, whenever it has room (`_claim_for_lanes`); and, every poll interval
        or when woken, the due deliveries of every other lane (retries, another sender's whose lease
        ran out), a bounded number of each (`_claim_due`)."""
        looked = -self._poll_interval  # when the last look at every lane began
        again = False
        while True:
            # Cleared before the pass, not after it: a wake while it runs (deliveries left here for a
            # lane it has looked at already) makes another pass at once rather than wait for the interval.
            self._wake.clear()
            everywhere = again or self._look_everywhere or time.monotonic() - looked >= self._poll_interval
            self._look_everywhere = again = False
            try:
                await self._claim_for_lanes()
                if everywhere:
                    looked = time.monotonic()
                    again = await self._claim_due()
            except asyncio.CancelledError:
                raise
            except DBAPIError as exc:  # the database is away: one line per poll, not a stack trace
                log.warning("polling for due deliveries failed", error=str(exc.orig or exc).splitlines()[0])
            except Exception:
                log.exception("polling for due deliveries failed")
            if again:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, looked + self._poll_interval - time.monotonic()))

    async def _claim_for_lanes(self) -> None:
        """For each lane with deliveries waiting in the database and room for at least a claim's
        worth (its breaker closed), claims as many as it has room for, the next to go out first; a
        lane that got fewer than it asked for, and had nothing stored for it meanwhile, is drained.
        One index range per lane: the cost is what is claimed, not what waits."""
        for endpoint_id, marked in list(self._overflowed.items()):
            lane = self._lanes.get(endpoint_id)
            if lane is not None and lane.breaker.is_open:
                continue
            room = min(self.room(), self.lane_backlog - (lane.size if lane else 0))
            if room < max(1, min(self._claim_per_lane, self.lane_backlog // 2, self.backlog // 2)):
                continue  # too little to be worth a claim: the lane wakes the poller once half of it is free
            found = await self._store.claim_lane(endpoint_id, room)
            for delivery in found:
                self.submit(delivery.id, delivery.endpoint_id, delivery, over_backlog=True)
            if len(found) < room and self._overflowed.get(endpoint_id) == marked:
                del self._overflowed[endpoint_id]

    async def _claim_due(self) -> bool:
        """Claims the due deliveries of the lanes not served by `_claim_for_lanes`, a bounded number
        of each; a lane that got all it asked for has more waiting and is served lane by lane from
        then on. True when there may be more to claim at once."""
        room = self.backlog - len(self._held)
        if room <= 0:
            return False
        limit = min(room, self._poll_batch)
        found = await self._store.claim_due(self._claim_per_lane, limit, self._skipped_lanes())
        per_lane: dict[str, int] = {}
        for delivery in found:
            per_lane[delivery.endpoint_id] = per_lane.get(delivery.endpoint_id, 0) + 1
            # Claimed for room there was a moment ago; a hot path that filled it since makes the
            # backlog overshoot by at most one batch.
            self.submit(delivery.id, delivery.endpoint_id, delivery, over_backlog=True)
        for endpoint_id, count in per_lane.items():
            if count >= self._claim_per_lane:
                self._mark_overflowed(endpoint_id)
        return len(found) >= limit

    async def _renew_forever(self) -> None:
        """Renews the leases of every delivery held, in one statement, every `renew_interval`."""
        while True:
            await asyncio.sleep(self._renew_interval)
            held = [h.delivery for h in self._held.values() if h.delivery is not None]
            try:
                lost = await self._store.renew(held)
            except asyncio.CancelledError:
                raise
            except DBAPIError as exc:
                log.warning("renewing leases failed", error=str(exc.orig or exc).splitlines()[0])
                continue
            except Exception:
                log.exception("renewing leases failed")
                continue
            for delivery in lost:
                self._drop_lost(delivery)

    def _drop_lost(self, delivery: QueuedDelivery) -> None:
        """A lease found lost (another sender took it over): a delivery still waiting leaves its lane;
        one on the wire is fenced (its outcome is not written)."""
        held = self._held.get(delivery.id)
        if held is None or held.delivery is not delivery:
            return  # finished, or claimed again since
        lane = self._lanes.get(held.endpoint_id)
        if lane is not None and held in lane.waiting:
            lane.waiting.remove(held)
            self._release(held)
