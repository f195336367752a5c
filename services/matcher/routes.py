"""Route resolution through the registry, with a cache kept true by the registry's change stream.

Entries are keyed by (account, application, event type, level). A change to an endpoint or a filter
drops its account's entries; a change to an application drops everything. The cache is used only while
the change stream is connected: when it breaks, everything is dropped, lookups go to the registry
uncached, and the stream is re-opened after the last sequence seen (so no change is missed). An answer
that was asked for before a change and arrives after it is not cached (per-account epochs).

When the registry cannot be reached, `resolve` waits and tries again: a message is never dropped,
dead-lettered or skipped because of it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import grpc
from hooks.registry.v1 import routing_pb2, routing_pb2_grpc

from services.common.logging import get_logger
from services.matcher import metrics

log = get_logger(__name__)

RouteKey = tuple[str, str, str, str]  # account, application, event type, level

# Transient: wait and ask again. Anything else but INVALID_ARGUMENT is treated as transient too, since a
# registry bug must not throw messages away; INVALID_ARGUMENT means the question itself is bad.
PERMANENT_CODES = {grpc.StatusCode.INVALID_ARGUMENT}


@dataclass(frozen=True, slots=True)
class Resolution:
    registered: bool
    reason: str
    #: The endpoint ids to deliver to, each once.
    endpoint_ids: tuple[str, ...]


class RegistryRejected(Exception):
    """The registry answered INVALID_ARGUMENT: asking again would not help."""


def backoff_delays(initial: float = 0.1, maximum: float = 5.0):
    """Exponential delays with jitter, capped at `maximum`."""
    delay = initial
    while True:
        yield delay * random.uniform(0.5, 1.0)
        delay = min(maximum, delay * 2)


class RouteCache:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        max_backoff: float = 5.0,
        call_timeout: float = 10.0,
        max_entries: int = 100_000,
    ):
        self._stub = routing_pb2_grpc.RoutingServiceStub(channel)
        self._max_backoff = max_backoff
        self._call_timeout = call_timeout
        self._max_entries = max_entries
        self._entries: dict[RouteKey, Resolution] = {}
        self._inflight: dict[RouteKey, asyncio.Future[Resolution]] = {}
        self._global_epoch = 0
        self._account_epochs: dict[str, int] = {}
        self._live = False  # the change stream is connected: caching is safe
        self._sequence = 0
        self._watch_task: asyncio.Task | None = None
        self._stopping = False
        #: How many changes the cache has applied (tests wait on it).
        self.changes_applied = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._watch_task = asyncio.create_task(self._follow_changes(), name="route-cache-watch")

    async def stop(self) -> None:
        self._stopping = True
        if self._watch_task:
            self._watch_task.cancel()
            try:
                await self._watch_task
            except asyncio.CancelledError:
                pass

    @property
    def live(self) -> bool:
        return self._live

    @property
    def sequence(self) -> int:
        """The last change sequence applied (tests wait on it)."""
        return self._sequence

    # -- lookups ---------------------------------------------------------------------------------

    async def resolve(self, account: str, application: str, event_type: str, level: str) -> Resolution:
        """The routes of an event, from the cache when it is live, else from the registry
        (waiting out registry outages)."""
        key = (account, application, event_type, level)
        cached = self._entries.get(key)
        if cached is not None:
            metrics.ROUTE_CACHE_HITS.inc()
            return cached
        metrics.ROUTE_CACHE_MISSES.inc()
        # One question per key at a time, whoever asks; the answer is cached only when it is known to
        # be current (the stream is live and nothing of the account changed while asking).
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Resolution] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        epochs = (self._global_epoch, self._account_epochs.get(account, 0))
        try:
            resolution = await self._ask_until_answered(key)
        except BaseException as exc:
            if self._inflight.get(key) is future:
                del self._inflight[key]
            if not future.done():
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()  # retrieved: waiters re-raise it
            raise
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if self._live and epochs == (self._global_epoch, self._account_epochs.get(account, 0)):
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = resolution
        future.set_result(resolution)
        return resolution

    async def resolve_uncached(self, account: str, application: str, event_type: str, level: str) -> routing_pb2.ResolveRoutesResponse:
        """One ResolveRoutes call, as is (MatchMessage's dry run); raises grpc errors."""
        return await self._stub.ResolveRoutes(
            routing_pb2.ResolveRoutesRequest(
                account_id=account, application=application, event_type=event_type, level=level
            ),
            timeout=self._call_timeout,
        )

    async def _ask_until_answered(self, key: RouteKey) -> Resolution:
        account, application, event_type, level = key
        delays = backoff_delays(maximum=self._max_backoff)
        while True:
            try:
                response = await self.resolve_uncached(account, application, event_type, level)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in PERMANENT_CODES:
                    raise RegistryRejected(exc.details() or str(exc.code())) from None
                delay = next(delays)
                log.warning(
                    "registry unavailable; waiting", code=exc.code().name, details=exc.details(), retry_in=round(delay, 2)
                )
                await asyncio.sleep(delay)
                continue
            seen: dict[str, None] = {}
            for route in response.routes:
                seen.setdefault(route.endpoint.id, None)
            return Resolution(response.registered, response.reason, tuple(seen))

    # -- the change stream -----------------------------------------------------------------------

    def _invalidate(self, change: routing_pb2.WatchChangesResponse) -> None:
        if change.kind in (routing_pb2.RESOURCE_KIND_ENDPOINT, routing_pb2.RESOURCE_KIND_FILTER) and change.account_id:
            account = change.account_id
            self._account_epochs[account] = self._account_epochs.get(account, 0) + 1
            for key in [k for k in self._entries if k[0] == account]:
                del self._entries[key]
            # Who asks from now on asks afresh, rather than joining a question asked before the change.
            for key in [k for k in self._inflight if k[0] == account]:
                del self._inflight[key]
        else:
            self._clear()

    def _clear(self) -> None:
        self._global_epoch += 1
        self._entries.clear()
        self._inflight.clear()

    async def _follow_changes(self) -> None:
        delays = backoff_delays(maximum=self._max_backoff)
        while not self._stopping:
            call = self._stub.WatchChanges(routing_pb2.WatchChangesRequest(after_sequence=self._sequence))
            try:
                async for change in call:
                    if change.heartbeat:
                        if not self._live:
                            log.info("following registry changes", after_sequence=change.sequence)
                        # A resumed stream starts after what we saw; a fresh one (0) from now on.
                        if self._sequence == 0 or change.sequence < self._sequence:
                            self._sequence = change.sequence
                        self._live = True
                        delays = backoff_delays(maximum=self._max_backoff)
                        continue
                    if change.sequence > self._sequence:
                        self._sequence = change.sequence
                    self._invalidate(change)
                    self.changes_applied += 1
                problem = "ended"
            except asyncio.CancelledError:
                call.cancel()
                raise
            except grpc.aio.AioRpcError as exc:
                problem = exc.code().name
                if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                    self._sequence = 0  # the changes after ours were pruned: start afresh (the cache is dropped)
            was_live = self._live
            self._live = False
            self._clear()
            delay = next(delays)
            if was_live:
                log.warning("registry change stream broke; cache cleared", problem=problem, retry_in=round(delay, 2))
            await asyncio.sleep(delay)
