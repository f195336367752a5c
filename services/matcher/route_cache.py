"""Route resolution through the registry, with a cache kept true by the registry's change stream.

Entries are keyed by (account, application, event type, level). A change to an endpoint or a filter
drops its account's entries; a change to an application drops everything. The cache is used only while
the change stream is connected: when it breaks, everything is dropped, lookups go to the registry
uncached, and the stream is re-opened after the last sequence seen (so no change is missed). An answer
that was asked for before a change and arrives after it is not cached (per-account epochs).

When the registry cannot be reached or does not answer in time (poison.OUTAGE_CODES), `resolve` waits
and tries again: a message is never dropped, dead-lettered or skipped because of it. INVALID_ARGUMENT
raises RegistryRejected (asking again would not help). Any other code (INTERNAL, RESOURCE_EXHAUSTED,
UNKNOWN...) raises RegistryFailed, once the same question has been asked for an account that is no
tenant's (PROBE_ACCOUNT, one probe at a time): `answers` counts every answer, the probe's too, so the
caller can tell a poison from a registry that fails for everyone (services.matcher.poison) even when
no other message is asking.

Routes name their endpoint by `Route.endpoint_id`; `route.endpoint.id` is read when it is empty (an
older registry). Only the dry run asks for the endpoints' summaries (`with_endpoints`). A resolution
keeps the event type's `schema_version`, so the change that drops it (an application registered again)
also moves messages to the new schema (services.matcher.schemas asks for a schema with `ask_schema`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from hooks.registry.v1 import routing_pb2, routing_pb2_grpc
from services.common.background import BackgroundTask
from services.common.backoff import backoff_delays
from services.common.change_stream import ChangeFollower
from services.common.logging import get_logger
from services.matcher import metrics
from services.matcher.poison import Successes, is_outage

log = get_logger(__name__)

RouteKey = tuple[str, str, str, str]  # account, application, event type, level
K = TypeVar("K")
V = TypeVar("V")

#: The account of the probe question: no tenant's (an identity's account number is digits), and harmless
#: if it were (ResolveRoutes only reads).
PROBE_ACCOUNT = "hooks-matcher-probe"


@dataclass(frozen=True, slots=True)
class Resolution:
    registered: bool
    #: ResolveRoutesResponse.unregistered: which part names nothing registered (when not `registered`).
    unregistered: int
    reason: str
    #: The endpoint ids to deliver to, each once.
    endpoint_ids: tuple[str, ...]
    #: The event type's schema_version (services.matcher.schemas); empty when it has no schema.
    schema_version: str = ""

    @classmethod
    def of(cls, response: routing_pb2.ResolveRoutesResponse) -> Resolution:
        seen: dict[str, None] = {}
        for route in response.routes:
            seen.setdefault(route.endpoint_id or route.endpoint.id, None)
        return cls(response.registered, response.unregistered, response.reason, tuple(seen), response.schema_version)


class RegistryRejected(Exception):
    """The registry answered INVALID_ARGUMENT: asking again would not help."""


class RegistryFailed(Exception):
    """The registry answered a code that is neither an outage's nor INVALID_ARGUMENT (INTERNAL,
    RESOURCE_EXHAUSTED...); `RouteCache.answers` says whether it answers others meanwhile."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}" if details else code.name)
        self.code = code


async def one_at_a_time(inflight: dict[K, asyncio.Future[V]], key: K, ask: Callable[[], Awaitable[V]]) -> V:
    """`ask()`'s answer, asked once for every caller of the same key at the same time: a caller that
    finds a question for `key` in `inflight` waits for its answer (or its error) instead. Deleting a key
    from `inflight` makes later callers ask afresh."""
    pending = inflight.get(key)
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
    inflight[key] = future
    try:
        answer = await ask()
    except BaseException as exc:
        if not future.done():
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: waiters re-raise it
        raise
    finally:
        if inflight.get(key) is future:
            del inflight[key]
    future.set_result(answer)
    return answer


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
        # While its stream is live, caching is safe.
        self._changes = ChangeFollower(
            self._stub, "routes", on_change=self._invalidate, on_broken=self._clear, max_backoff=max_backoff
        )
        self._watch = BackgroundTask("route-cache-watch", self._changes.run)
        self._stopping = False
        self._probe: asyncio.Task | None = None
        #: Every ResolveRoutes the registry answered (the evidence that it serves others).
        self.answers = Successes()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._watch.start()

    async def stop(self) -> None:
        self._stopping = True
        if self._probe:
            self._probe.cancel()
        await self._watch.close()

    @property
    def live(self) -> bool:
        return self._changes.live

    @property
    def changes_applied(self) -> int:
        """How many changes the cache has applied (tests wait on it)."""
        return self._changes.changes_applied

    @property
    def sequence(self) -> int:
        """The last change sequence applied (tests wait on it)."""
        return self._changes.sequence

    # -- lookups ---------------------------------------------------------------------------------

    async def resolve(self, account: str, application: str, event_type: str, level: str) -> Resolution:
        """The routes of an event, from the cache when it is live, else from the registry (waiting out
        registry outages); raises RegistryRejected or RegistryFailed."""
        key = (account, application, event_type, level)
        cached = self._entries.get(key)
        if cached is not None:
            metrics.ROUTE_CACHE_HITS.inc()
            return cached
        metrics.ROUTE_CACHE_MISSES.inc()
        # One question per key at a time, whoever asks; the answer is cached only when it is known to
        # be current (the stream is live and nothing of the account changed while asking).
        epochs = (self._global_epoch, self._account_epochs.get(account, 0))

        async def ask() -> Resolution:
            resolution = Resolution.of(await self._ask_until_answered(key))
            if self._changes.live and epochs == (self._global_epoch, self._account_epochs.get(account, 0)):
                if len(self._entries) >= self._max_entries:
                    self._entries.clear()
                self._entries[key] = resolution
            return resolution

        return await one_at_a_time(self._inflight, key, ask)

    async def ask_schema(self, key: RouteKey) -> routing_pb2.ResolveRoutesResponse:
        """The registry's answer for `key` with the event type's JSON Schema (`with_schema`), waiting out
        outages as `resolve` does; uncached (the caller keeps what it compiles from it)."""
        return await self._ask_until_answered(key, with_schema=True)

    async def resolve_uncached(
        self,
        account: str,
        application: str,
        event_type: str,
        level: str,
        *,
        with_endpoints: bool = False,
        with_schema: bool = False,
    ) -> routing_pb2.ResolveRoutesResponse:
        """One ResolveRoutes call, as is (with the endpoints' summaries for the dry run, the event type's
        schema when asked); raises grpc errors."""
        response = await self._stub.ResolveRoutes(
            routing_pb2.ResolveRoutesRequest(
                account_id=account,
                application=application,
                event_type=event_type,
                level=level,
                with_endpoints=with_endpoints,
                with_schema=with_schema,
            ),
            timeout=self._call_timeout,
        )
        self.answers.add()
        return response

    async def _ask_until_answered(
        self, key: RouteKey, *, with_schema: bool = False
    ) -> routing_pb2.ResolveRoutesResponse:
        account, application, event_type, level = key
        delays = backoff_delays(maximum=self._max_backoff)
        while True:
            try:
                response = await self.resolve_uncached(account, application, event_type, level, with_schema=with_schema)
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details() or ""
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    raise RegistryRejected(details or code.name) from None
                if not is_outage(code.value[0]):
                    before = self.answers.count
                    await self._probe_once(application, event_type, level)
                    log.warning(
                        "registry failed on a question",
                        code=code.name,
                        details=details,
                        answers_others=self.answers.count > before,
                    )
                    raise RegistryFailed(code, details) from None
                delay = next(delays)
                log.warning("registry unavailable; waiting", code=code.name, details=details, retry_in=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            return response

    async def _probe_once(self, application: str, event_type: str, level: str) -> None:
        """Asks the registry the same question for PROBE_ACCOUNT (one probe at a time, whoever asks): if it
        is answered, `answers` moves on, as it does when others' questions are answered."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._ask_probe(application, event_type, level), name="registry-probe")
        await asyncio.shield(self._probe)

    async def _ask_probe(self, application: str, event_type: str, level: str) -> None:
        try:
            await self.resolve_uncached(PROBE_ACCOUNT, application, event_type, level)
        except grpc.aio.AioRpcError:
            pass  # it fails for others too: not counted

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
