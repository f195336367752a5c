"""Following the registry's change stream (RoutingService.WatchChanges), for the caches that hold what
the registry said: the matcher's routes, the sender's endpoints. One way to follow it, so both behave
alike: the stream opens after the last sequence seen (a change made while it was down still comes down
it), starts afresh when the registry pruned what came after (OUT_OF_RANGE), and is reopened after a
break with growing, jittered delays. A cache is safe to use only while the stream is live: from its
first heartbeat until it breaks, when the follower tells its owner to empty the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from hooks.registry.v1 import routing_pb2, routing_pb2_grpc
from services.common.backoff import backoff_delays
from services.common.logging import get_logger

log = get_logger(__name__)


class ChangeFollower:
    """Follows WatchChanges until cancelled: `on_live` when a stream starts (its heartbeat), told
    whether it continues after the last change seen (False for the first stream, and for one that
    starts afresh: changes made before it may never come down it); `on_change` for each change,
    `on_broken` when a stream ends or fails (empty the cache: what it holds may have changed unseen).
    `name` says in the logs which cache follows."""

    def __init__(
        self,
        stub: routing_pb2_grpc.RoutingServiceStub,
        name: str,
        on_change: Callable[[routing_pb2.WatchChangesResponse], None],
        on_broken: Callable[[], None],
        on_live: Callable[[bool], None] = lambda _continued: None,
        max_backoff: float = 5.0,
    ):
        self._stub = stub
        self._name = name
        self._on_change = on_change
        self._on_broken = on_broken
        self._on_live = on_live
        self._max_backoff = max_backoff
        #: The last change sequence seen: where the next stream starts after.
        self.sequence = 0
        #: A stream is connected and has said where it starts.
        self.live = False
        #: Changes received (tests wait on it).
        self.changes_applied = 0

    async def run(self) -> None:
        delays = backoff_delays(maximum=self._max_backoff)
        while True:
            call = self._stub.WatchChanges(routing_pb2.WatchChangesRequest(after_sequence=self.sequence))
            try:
                async for change in call:
                    if change.heartbeat:
                        # A resumed stream starts after what we saw; a fresh one (0) from now on.
                        continued = self.sequence != 0 and change.sequence >= self.sequence
                        if not continued:
                            self.sequence = change.sequence
                        self.live = True
                        self._on_live(continued)
                        log.info("following registry changes", cache=self._name, after_sequence=change.sequence)
                        delays = backoff_delays(maximum=self._max_backoff)
                        continue
                    self.sequence = max(self.sequence, change.sequence)
                    self._on_change(change)
                    self.changes_applied += 1
                problem = "ended"
            except asyncio.CancelledError:
                call.cancel()
                self.live = False
                self._on_broken()
                raise
            except grpc.aio.AioRpcError as exc:
                problem = exc.code().name
                if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                    self.sequence = 0  # the changes after ours were pruned: start afresh (the cache is emptied)
            except Exception as exc:
                log.exception("registry change stream failed", cache=self._name)
                problem = type(exc).__name__
            was_live, self.live = self.live, False
            self._on_broken()
            delay = next(delays)
            (log.warning if was_live else log.info)(
                "registry change stream broke; cache cleared",
                cache=self._name,
                problem=problem,
                retry_in=round(delay, 2),
            )
            await asyncio.sleep(delay)
