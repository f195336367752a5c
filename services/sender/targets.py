"""Endpoint details at attempt time, from the registry's RoutingService.GetDeliveryTarget, through a
cache that follows the registry's change stream: a change touching an endpoint drops it, so a retry
hours later honours what the account changed since. The cache is used only while the stream is up;
when it breaks, the cache is emptied and the stream reopened."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import grpc

from hooks.registry.v1 import endpoints_pb2, routing_pb2, routing_pb2_grpc
from services.common.logging import get_logger

log = get_logger(__name__)

RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Target:
    endpoint: endpoints_pb2.Endpoint
    account_id: str


class EndpointDeleted(Exception):
    """The registry does not know the endpoint (any more)."""


class TargetCache:
    def __init__(self, routing: routing_pb2_grpc.RoutingServiceStub, call_timeout: float = 10.0):
        self._routing = routing
        self._call_timeout = call_timeout
        self._targets: dict[str, Target] = {}
        self._generation = 0  # bumped on every drop: a lookup that raced one is not cached
        self._watching = False
        self._task: asyncio.Task | None = None
        self._lookups: dict[str, asyncio.Future[Target]] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow_changes(), name="sender-target-cache")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
        generation = self._generation
        try:
            response = await self._routing.GetDeliveryTarget(
                routing_pb2.GetDeliveryTargetRequest(endpoint_id=endpoint_id), timeout=self._call_timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise EndpointDeleted(endpoint_id) from exc
            raise
        target = Target(response.endpoint, response.account_id)
        if self._watching and generation == self._generation:
            self._targets[endpoint_id] = target
        return target

    def drop(self, endpoint_id: str) -> None:
        self._generation += 1
        self._targets.pop(endpoint_id, None)
        self._lookups.pop(endpoint_id, None)  # a lookup begun before the change is not shared after it

    def _clear(self) -> None:
        self._watching = False
        self._generation += 1
        self._lookups.clear()
        self._targets.clear()

    async def _follow_changes(self) -> None:
        failures = 0
        while True:
            try:
                stream = self._routing.WatchChanges(routing_pb2.WatchChangesRequest(after_sequence=0))
                async for change in stream:
                    if change.heartbeat:
                        self._watching = True
                        failures = 0
                        continue
                    if change.kind == routing_pb2.RESOURCE_KIND_ENDPOINT:
                        self.drop(change.resource_id)
                log.info("registry change stream ended; reconnecting")
            except asyncio.CancelledError:
                self._clear()
                raise
            except grpc.aio.AioRpcError as exc:
                log.info("registry change stream broke; reconnecting", code=exc.code().name)
            except Exception:  # noqa: BLE001 - keep following whatever happens
                log.exception("registry change stream failed; reconnecting")
            self._clear()
            await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])
            failures += 1
