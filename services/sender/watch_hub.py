"""In-process pub/sub of delivery status changes, for WatchDeliveries.

Fed by this sender's Deliver and workers. Subscriptions are indexed by account, so publishing a
change looks at the watchers of its account only. With several replicas on one PostgreSQL database,
`WatchRelay` (services/sender/watch_relay.py) carries changes between them, so a watcher connected to
one sees every replica's; on SQLite there is one sender process and nothing to carry.

What one account can hold is bounded: at most `streams_per_account` subscriptions at once
(HOOKS_SENDER_WATCH_STREAMS_PER_ACCOUNT), each queueing at most QUEUE_SIZE changes; a watcher that
falls further behind is cut off.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hooks.sender.v1 import deliveries_pb2
from services.common.errors import QuotaExceeded

if TYPE_CHECKING:  # it imports this module
    from services.sender.watch_relay import WatchRelay

#: Changes queued for one watcher that has not read them yet; beyond, it is cut off ("watch again").
QUEUE_SIZE = 100


@dataclass(eq=False)
class Subscription:
    account_id: str
    endpoint_id: str
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False


class WatchHub:
    def __init__(self, streams_per_account: int) -> None:
        self.streams_per_account = streams_per_account
        self._accounts: dict[str, set[Subscription]] = {}
        #: Set by a WatchRelay: told of every change of an account other replicas watch, and of
        #: accounts that begin to be watched here.
        self.relay: WatchRelay | None = None

    def subscribe(self, account_id: str, endpoint_id: str = "") -> Subscription:
        """Raises QuotaExceeded when the account watches `streams_per_account` times already."""
        if self.watching(account_id) >= self.streams_per_account:
            raise QuotaExceeded(
                "watch_streams_per_account",
                f"an account may watch its deliveries on at most {self.streams_per_account} streams at once"
                " (HOOKS_SENDER_WATCH_STREAMS_PER_ACCOUNT); close one first",
            )
        subscription = Subscription(account_id, endpoint_id)
        subscriptions = self._accounts.setdefault(account_id, set())
        subscriptions.add(subscription)
        if len(subscriptions) == 1 and self.relay is not None:
            self.relay.watching(account_id)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscriptions = self._accounts.get(subscription.account_id)
        if subscriptions is None:
            return
        subscriptions.discard(subscription)
        if not subscriptions:
            del self._accounts[subscription.account_id]

    def publish(self, account_id: str, delivery: deliveries_pb2.Delivery) -> None:
        """A change this replica made: to its own watchers, and to the other replicas' through the relay."""
        if self.relay is not None and self.relay.wants(account_id):
            self.relay.forward(account_id, delivery)
        self.publish_here(account_id, delivery)

    def publish_here(self, account_id: str, delivery: deliveries_pb2.Delivery) -> None:
        """A change, to this replica's watchers of the account."""
        for subscription in self._accounts.get(account_id, ()):
            if subscription.overflowed or (
                subscription.endpoint_id and subscription.endpoint_id != delivery.endpoint_id
            ):
                continue
            try:
                subscription.queue.put_nowait(delivery)
            except asyncio.QueueFull:
                # A watcher that does not keep up is cut off rather than holding more: it gets no
                # more changes, and (still counted until its stream ends) is told to watch again.
                subscription.overflowed = True

    def wants(self, account_id: str) -> bool:
        """Whether anyone watches the account, here or on another replica (so changes nobody watches
        are not even converted)."""
        return account_id in self._accounts or (self.relay is not None and self.relay.wants(account_id))

    def accounts(self) -> list[str]:
        """The accounts watched here."""
        return list(self._accounts)

    def watching(self, account_id: str) -> int:
        """How many streams watch the account."""
        return len(self._accounts.get(account_id, ()))
