"""In-process pub/sub of delivery status changes, for WatchDeliveries.

Fed by this sender's Deliver and workers, so a watcher sees the changes this replica makes; with
several replicas, a watcher connected to one does not see the others' changes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hooks.sender.v1 import deliveries_pb2

QUEUE_SIZE = 1000


@dataclass(eq=False)
class Subscription:
    account_id: str
    endpoint_id: str
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False


class WatchHub:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()

    def subscribe(self, account_id: str, endpoint_id: str = "") -> Subscription:
        subscription = Subscription(account_id, endpoint_id)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, account_id: str, delivery: deliveries_pb2.Delivery) -> None:
        for subscription in list(self._subscriptions):
            if subscription.account_id != account_id:
                continue
            if subscription.endpoint_id and subscription.endpoint_id != delivery.endpoint_id:
                continue
            try:
                subscription.queue.put_nowait(delivery)
            except asyncio.QueueFull:
                # A watcher that does not keep up is cut off rather than holding memory.
                subscription.overflowed = True
                self._subscriptions.discard(subscription)

    def wants(self, account_id: str) -> bool:
        """Whether anyone watches the account (so changes nobody watches are not even converted)."""
        return any(s.account_id == account_id for s in self._subscriptions)
