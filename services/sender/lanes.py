"""Lanes: each endpoint is a lane with its own queue of deliveries this sender holds (leased), its own
concurrency, its optional rate limit (a token bucket), its circuit breaker and its optional order
(ORDERED: one in flight, in acceptance order, a failure holding the later ones back until it succeeds
or is given up), so one endpoint's backlog or failures never take the room of another's. The
dispatcher (`services/sender/dispatcher.py`) serves the lanes that are ready in turn.

A lane learns its endpoint's options (rate limit, order) from the endpoint as the registry gives it
to the deliverer (`Lane.configure`); until its first lookup it runs one attempt at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from hooks.registry.v1 import endpoints_pb2
from services.sender.store import QueuedDelivery


class Held:
    """A delivery this sender holds: from when it is handed to its lane until its outcome is
    committed (or it is given back). `delivery` is the row as leased (None until a worker claims it,
    for one submitted by id); the lease renewal keeps its `claimed_until` current."""

    __slots__ = ("id", "endpoint_id", "delivery", "succeeded", "retry_at", "lane", "waiters")

    def __init__(self, delivery_id: str, endpoint_id: str, delivery: QueuedDelivery | None):
        self.id = delivery_id
        self.endpoint_id = endpoint_id
        self.delivery = delivery
        #: The last attempt's verdict and, when it is to be retried, when (wall clock), set by the
        #: deliverer (for the breaker and an ordered lane).
        self.succeeded = False
        self.retry_at: datetime | None = None
        self.lane: Lane | None = None
        self.waiters: list[
            asyncio.Future[None]
        ] = []  # futures of callers waiting for this delivery's attempt (run_now)


@dataclass
class BreakerSettings:
    #: Consecutive failed attempts that open the breaker.
    consecutive_failures: int = 10
    #: Or: this share of failures among the attempts of the last `window_seconds`...
    failure_ratio: float = 0.5
    #: ...counted only once the window holds this many attempts.
    min_attempts: int = 20
    window_seconds: float = 30.0
    #: The first wait before a probe; doubled after each failed probe, up to `max_probe_seconds`.
    probe_seconds: float = 1.0
    max_probe_seconds: float = 60.0


@dataclass
class CircuitBreaker:
    """Closed: attempts flow. Open (after `consecutive_failures` failures in a row, or a failure
    ratio over the window): nothing is sent until the probe time, then one attempt (the probe); its
    success closes the breaker, its failure opens it again for twice as long."""

    settings: BreakerSettings
    failures_in_a_row: int = 0
    #: The attempts of the last `window_seconds`, counted per second: [second, attempts, failures],
    #: oldest first (at most window_seconds + 1 of them, whatever the rate), with their totals.
    window: deque = field(default_factory=deque)
    window_attempts: int = 0
    window_failures: int = 0
    open_until: float | None = None  # None: closed
    probe_wait: float = 0.0
    probing: bool = False

    @property
    def is_open(self) -> bool:
        return self.open_until is not None

    def allows(self, now: float) -> bool:
        """Whether an attempt may start now (closed, or open with its probe due and none out)."""
        if self.open_until is None:
            return True
        return not self.probing and now >= self.open_until

    def started(self) -> bool:
        """An attempt starts; True when it is the open breaker's probe."""
        if self.open_until is None:
            return False
        self.probing = True
        return True

    def record(self, succeeded: bool, now: float) -> None:
        settings = self.settings
        if self.open_until is not None:
            if not self.probing:
                return  # an attempt started before the breaker opened: the probe decides
            self.probing = False
            if succeeded:
                self._close()
            else:
                self.probe_wait = min(self.probe_wait * 2, settings.max_probe_seconds)
                self.open_until = now + self.probe_wait
            return
        if succeeded:
            self.failures_in_a_row = 0
        else:
            self.failures_in_a_row += 1
        self._count(succeeded, now)
        if self.failures_in_a_row >= settings.consecutive_failures or (
            self.window_attempts >= settings.min_attempts
            and self.window_failures >= settings.failure_ratio * self.window_attempts
        ):
            self.probe_wait = settings.probe_seconds
            self.open_until = now + self.probe_wait

    def _count(self, succeeded: bool, now: float) -> None:
        """Adds the attempt to the window and drops the seconds that left it: O(1) per attempt."""
        window, second = self.window, int(now)
        if not window or window[-1][0] != second:
            window.append([second, 0, 0])
        bucket = window[-1]
        bucket[1] += 1
        self.window_attempts += 1
        if not succeeded:
            bucket[2] += 1
            self.window_failures += 1
        horizon = now - self.settings.window_seconds
        while window[0][0] + 1 <= horizon:
            _, attempts, failures = window.popleft()
            self.window_attempts -= attempts
            self.window_failures -= failures

    def _close(self) -> None:
        self.open_until = None
        self.failures_in_a_row = 0
        self.window.clear()
        self.window_attempts = self.window_failures = 0
        self.probe_wait = 0.0


class TokenBucket:
    """`rate` tokens a second, at most `capacity` saved up (a second's worth, at least one, unless given)."""

    __slots__ = ("rate", "capacity", "tokens", "at")

    def __init__(self, requests: int, period_seconds: float, capacity: float | None = None):
        self.rate = requests / period_seconds
        self.capacity = capacity or max(1.0, self.rate)
        self.tokens = self.capacity
        self.at = time.monotonic()

    def _fill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def available(self, now: float) -> bool:
        self._fill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> None:
        self._fill(now)
        self.tokens -= 1.0

    def next_token_at(self, now: float) -> float:
        self._fill(now)
        return now + max(0.0, (1.0 - self.tokens) / self.rate)


#: The proto's rate limit periods (hooks.registry.v1.RateLimitPeriod) in seconds.
PERIOD_SECONDS = {1: 1.0, 2: 60.0}
#: hooks.registry.v1.DeliveryOrder.DELIVERY_ORDER_ORDERED
ORDERED = 2


class Lane:
    """One endpoint's deliveries held by this sender: `waiting` in the order they came, `running`
    how many are being attempted, at most `concurrency` at once (one while the breaker probes, one
    when ordered)."""

    __slots__ = (
        "endpoint_id", "default_concurrency", "concurrency", "waiting", "running", "breaker", "in_ring",
        "wake_at", "bucket", "limit", "ordered", "held_back_until", "offer",
    )  # fmt: skip

    def __init__(self, endpoint_id: str, concurrency: int, breaker: CircuitBreaker):
        self.endpoint_id = endpoint_id
        self.default_concurrency = concurrency
        self.concurrency = 1  # until the endpoint's options are known: it may be ordered
        self.waiting: deque[Held] = deque()
        self.running = 0
        self.breaker = breaker
        self.in_ring = False  # queued among the ready lanes
        self.wake_at: float | None = None  # a timer will offer the lane again then
        self.bucket: TokenBucket | None = None
        self.limit: tuple[int, int] = (0, 0)  # the endpoint's (requests, period) the bucket follows
        self.ordered = False
        #: Ordered lane: its head failed and is retried then (monotonic); nothing goes before.
        self.held_back_until: float | None = None
        #: Queues the lane among the ready ones again (set by the dispatcher): when `configure` widens
        #: it, its waiting deliveries start at once rather than after the attempt under way.
        self.offer: Callable[[], None] | None = None

    def configure(self, endpoint: endpoints_pb2.Endpoint) -> None:
        """Follows the endpoint's rate limit and order (a hooks.registry.v1.Endpoint)."""
        limit = (endpoint.rate_limit.requests, endpoint.rate_limit.period)
        if limit != self.limit:
            self.limit = limit
            period = PERIOD_SECONDS.get(limit[1])
            self.bucket = TokenBucket(limit[0], period) if limit[0] > 0 and period else None
        self.ordered = endpoint.order == ORDERED
        widened = not self.ordered and self.concurrency < self.default_concurrency
        self.concurrency = 1 if self.ordered else self.default_concurrency
        if widened and self.offer is not None:
            self.offer()

    def hold_back(self, held: Held, until: float) -> None:
        """Ordered lane: `held` failed and is retried at `until` (monotonic); it goes first again
        then, and the later ones wait for it."""
        self.held_back_until = until
        self.waiting.appendleft(held)

    def next_ready_at(self, now: float) -> float | None:
        """When a lane that has work but is not ready becomes ready by time alone (a probe, a token,
        an ordered lane's retry), or None."""
        if not self.waiting or self.running >= self.concurrency:
            return None  # the attempt that ends offers the lane again
        times = []
        if self.held_back_until is not None and now < self.held_back_until:
            times.append(self.held_back_until)
        breaker = self.breaker
        if breaker.open_until is not None and not breaker.probing and now < breaker.open_until:
            times.append(breaker.open_until)
        if self.bucket is not None and not self.bucket.available(now):
            times.append(self.bucket.next_token_at(now))
        return max(times) if times else None

    @property
    def size(self) -> int:
        """Deliveries held: waiting and running."""
        return len(self.waiting) + self.running

    def ready(self, now: float | None = None) -> bool:
        """Whether a worker may start one of its deliveries now."""
        if not self.waiting or self.running >= self.concurrency:
            return False
        now = time.monotonic() if now is None else now
        if self.held_back_until is not None:
            if now < self.held_back_until:
                return False
            self.held_back_until = None
        if self.bucket is not None and not self.bucket.available(now):
            return False
        breaker = self.breaker
        if breaker.open_until is None:
            return True
        return self.running == 0 and breaker.allows(now)
