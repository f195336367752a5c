"""Endpoint details at attempt time, from the registry's RoutingService.GetDeliveryTarget, through a
cache that follows the registry's change stream: a change touching an endpoint drops it, so a retry
hours later honours what the account changed since. The cache is used only while the stream is up;
when it breaks, the cache is emptied and the stream reopened after the last sequence seen
(services/common/change_stream.py, as for the matcher's route cache), so a change made while it was
down still comes down it. A lookup is cached only if the stream was up from before it began until it ended
(nothing it might have missed can be lost between the two).

What else follows an endpoint's changes (the paused endpoints' held deliveries) listens here
(`follow`): it is told of each endpoint a change touched, and when the changes before a stream may
have been missed (the first stream, or one started afresh)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import grpc

from hooks.registry.v1 import endpoints_pb2, routing_pb2, routing_pb2_grpc
from services.common.background import BackgroundTask
from services.common.change_stream import ChangeFollower
from services.common.logging import get_logger
from services.common.lru import LruCache

log = get_logger(__name__)

#: Endpoints kept (the least recently used dropped beyond): their ids come from tenants' filters.
CACHE_SIZE = 4096


@dataclass(frozen=True)
class Target:
    endpoint: endpoints_pb2.Endpoint
    account_id: str
    #: The secret the endpoint's current one replaced, while the registry said it still signs.
    previous_secret: str = ""

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets a delivery sent at `now` is signed with: the endpoint's, and the one it replaced
        until its grace period ends (judged here, at each attempt: the target may be cached past it)."""
        if self.previous_secret and now < self.endpoint.previous_secret_expire_time.ToDatetime(tzinfo=UTC):
            return (self.endpoint.secret, self.previous_secret)
        return (self.endpoint.secret,)


class EndpointDeleted(Exception):
    """The registry does not know the endpoint (any more)."""


class EndpointListener(Protocol):
    """What follows endpoints' changes through the cache (`TargetCache.follow`)."""

    def endpoint_changed(self, endpoint_id: str) -> None:
        """A change touched the endpoint (it is no longer cached)."""

    def changes_missed(self) -> None:
        """Changes made before the stream now live may not have come down it: look at everything again."""


class TargetCache:
    def __init__(
        self, routing: routing_pb2_grpc.RoutingServiceStub, call_timeout: float = 10.0, size: int = CACHE_SIZE
    ):
        self._routing = routing
        self._call_timeout = call_timeout
        self._targets: LruCache[str, Target] = LruCache(size)
        self._generation = 0  # bumped on every drop: a lookup that raced one is not cached
        self._changes = ChangeFollower(
            routing, "endpoints", on_change=self._apply, on_broken=self._clear, on_live=self._live
        )
        self._following = BackgroundTask("sender-target-cache", self._changes.run)
        self._lookups: dict[str, asyncio.Future[Target]] = {}
        self._listeners: list[EndpointListener] = []

    def follow(self, listener: EndpointListener) -> None:
        """Tells `listener` of every endpoint a change touches from now on (after the cache dropped it)."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._following.start()

    async def close(self) -> None:
        await self._following.close()

    async def get(self, endpoint_id: str) -> Target:
        """Raises EndpointDeleted, or grpc.aio.AioRpcError when the registry cannot answer. Lookups of
        one endpoint that overlap share one call (a burst of deliveries on a cold cache asks once)."""
        cached = self._targets.get(endpoint_id)
        if cached is not None:
            return cached
        pending = self._lookups.get(endpoint_id)
        if pending is None:
            pending = asyncio.ensure_future(self._look_up(endpoint_id))
            self._lookups[endpoint_id] = pending
            pending.add_done_callback(lambda done: self._lookup_done(endpoint_id, done))
        return await asyncio.shield(pending)

    def _lookup_done(self, endpoint_id: str, done: asyncio.Future) -> None:
        if self._lookups.get(endpoint_id) is done:
            del self._lookups[endpoint_id]
        if not done.cancelled():
            done.exception()  # seen, even when every caller has gone

    async def _look_up(self, endpoint_id: str) -> Target:
        generation = self._generation if self._changes.live else None
        try:
            response = await self._routing.GetDeliveryTarget(
                routing_pb2.GetDeliveryTargetRequest(endpoint_id=endpoint_id), timeout=self._call_timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise EndpointDeleted(endpoint_id) from exc
            raise
        target = Target(response.endpoint, response.account_id, response.previous_secret)
        if self._changes.live and generation == self._generation:
            self._targets.put(endpoint_id, target)
        return target

    @property
    def sequence(self) -> int:
        """The last change sequence seen: where the stream resumes after a break."""
        return self._changes.sequence

    @property
    def generation(self) -> int:
        """Changes with every endpoint dropped (and every (re)start of the stream): a caller that read
        it before a lookup and finds it the same after acting on the answer knows no change came
        down the stream meanwhile."""
        return self._generation

    @property
    def watching(self) -> bool:
        """Whether the registry's change stream is up: only then are endpoints cached."""
        return self._changes.live

    def __len__(self) -> int:
        """How many endpoints are cached."""
        return len(self._targets)

    def __contains__(self, endpoint_id: object) -> bool:
        """Whether the endpoint is cached."""
        return endpoint_id in self._targets

    def drop(self, endpoint_id: str) -> None:
        self._generation += 1
        self._targets.pop(endpoint_id)
        self._lookups.pop(endpoint_id, None)  # a lookup begun before the change is not shared after it

    @property
    def changes_applied(self) -> int:
        """Changes received from the stream (tests wait on it)."""
        return self._changes.changes_applied

    def _live(self, continued: bool) -> None:
        self._generation += 1  # a lookup begun before the stream was up is not cached
        if not continued:
            for listener in self._listeners:
                listener.changes_missed()

    def _apply(self, change: routing_pb2.WatchChangesResponse) -> None:
        if change.kind == routing_pb2.RESOURCE_KIND_ENDPOINT:
            self.drop(change.resource_id)
            for listener in self._listeners:
                listener.endpoint_changed(change.resource_id)

    def _clear(self) -> None:
        self._generation += 1
        self._lookups.clear()
        self._targets.clear()
