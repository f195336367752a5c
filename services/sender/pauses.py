"""Paused endpoints: their deliveries are held, not attempted, and go out when the endpoint is resumed.

A delivery whose endpoint the registry says is paused (and enabled: a disabled endpoint's deliveries
fail, paused or not) is held when it comes to be attempted: it stays PENDING with no next attempt
(`dialects.held`), no attempt counted, so no poll finds it due again however long the pause. The
matcher goes on handing new ones over, and each is held in turn.

What lets them go is the registry's change stream, which carries every pause and resume as a change
of the endpoint (through the target cache, `TargetCache.follow`): for an endpoint that has deliveries
held, the endpoint is looked up again, and unless it is still paused (resumed, disabled, deleted),
its held deliveries are made due at once, its lane's waiting ones given back, and the poller claims
them lane by lane in the order they arrived (services/sender/dispatcher.py, `take_back`), so an
ordered endpoint gets them in acceptance order, and the hot path leases nothing for it until they are
all out. Each delivery is judged again at its attempt, as any other. Every replica follows the stream
and does the same; the one statement that lets them go finds nothing left for the later ones.

Two races are closed: a delivery held on a cached answer while the resume was coming down the stream
(the cache's `generation` moved between the lookup and the hold: the endpoint is looked at again
after the hold), and changes a stream may have missed (the sender's first stream, or one started
afresh after the registry pruned the changes it wanted): every endpoint with held deliveries is
looked at again then. What is not promised: a delivery already on its way to the wire when the
endpoint is paused is sent; and one caught between its lookup and its hold at the very moment of the
resume is let go a moment after the others, so it may go out after later ones.
"""

from __future__ import annotations

import asyncio

import grpc

from services.common.background import BackgroundTask
from services.common.logging import get_logger
from services.sender.dispatcher import Dispatcher
from services.sender.models import Delivery, DeliveryState
from services.sender.store import DeliveryStore, QueuedDelivery
from services.sender.targets import EndpointDeleted, TargetCache

log = get_logger(__name__)

#: What a held delivery says meanwhile (its last_error).
HELD = "the endpoint is paused: kept, not attempted, until it is resumed"
#: After a failure to look (the database away), look again this much later.
RETRY_SECONDS = 1.0


class PausedEndpoints:
    """Holds the deliveries of paused endpoints and lets them go when their endpoint is resumed
    (see the module's docstring). `start` once the dispatcher exists; `close` before it closes."""

    def __init__(self, store: DeliveryStore, targets: TargetCache):
        self._store = store
        self._targets = targets
        self._dispatcher: Dispatcher | None = None
        #: Endpoints to look at again (a change touched them, or a hold raced one).
        self._changed: set[str] = set()
        #: Every endpoint with held deliveries is to be looked at again.
        self._everywhere = False
        self._wake = asyncio.Event()
        self._task = BackgroundTask("sender-paused-endpoints", self._run)
        #: Deliveries let go so far (tests and logs).
        self.released = 0

    def start(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._targets.follow(self)
        self._task.start()

    async def close(self) -> None:
        await self._task.close()

    async def hold(self, delivery: QueuedDelivery, generation: int) -> Delivery | None:
        """Holds the delivery (under the lease it was read with) for its paused endpoint, as the
        target cache answered at `generation`; returns it as it now stands, for its watchers."""
        row = await self._store.settle(delivery, DeliveryState.PENDING, HELD)
        if self._targets.generation != generation:
            self.endpoint_changed(delivery.endpoint_id)  # the resume may have come meanwhile
        return row

    # -- what the target cache tells (EndpointListener) -------------------------------------------

    def endpoint_changed(self, endpoint_id: str) -> None:
        self._changed.add(endpoint_id)
        self._wake.set()

    def changes_missed(self) -> None:
        self._everywhere = True
        self._wake.set()

    # -- letting them go ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if self._everywhere:
                    found = await self._store.held_endpoints()
                    self._everywhere = False
                    self._changed.update(found)
                while self._changed:
                    endpoint_id = self._changed.pop()
                    try:
                        await self._look_at(endpoint_id)
                    except Exception:
                        self._changed.add(endpoint_id)
                        raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be briefly away: look again soon
                log.warning("looking at paused endpoints failed", error=str(exc))
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()

    async def _look_at(self, endpoint_id: str) -> None:
        """Lets the endpoint's held deliveries go unless it is still paused (and enabled). When the
        registry cannot say, they go too: each one's attempt asks again (and waits for the registry)."""
        if not await self._store.has_held(endpoint_id):
            return
        try:
            endpoint = (await self._targets.get(endpoint_id)).endpoint
            if endpoint.paused and endpoint.enabled:
                return
        except (EndpointDeleted, grpc.aio.AioRpcError):
            pass
        await self.release(endpoint_id)

    async def release(self, endpoint_id: str) -> None:
        assert self._dispatcher is not None, "start() first"
        given_back = self._dispatcher.take_back(endpoint_id)
        released = await self._store.release_held(endpoint_id, given_back)
        self._dispatcher.left_to_poller(endpoint_id)
        if released:
            self.released += released
            log.info("paused endpoint's deliveries let go", endpoint_id=endpoint_id, deliveries=released)
