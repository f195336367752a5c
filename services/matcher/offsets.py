"""Per-partition watermarks: which offset may be stored while messages finish out of order.

Messages of a partition are processed concurrently and finish in any order. The offset stored for the
partition is the lowest offset still in flight (or one past the highest seen when none is), so a
crash re-reads every message that was not done, and nothing before it. Revoking a partition forgets
its state: a message of it finishing later changes nothing (its new owner reads it again).
"""

from __future__ import annotations

import threading
from collections import deque


class PartitionWatermark:
    """The offsets of one partition in one assignment, in the order they were consumed."""

    __slots__ = ("topic", "partition", "revoked", "_pending", "_done", "_next", "_stored")

    def __init__(self, topic: str, partition: int):
        self.topic = topic
        self.partition = partition
        self.revoked = False
        self._pending: deque[int] = deque()  # begun, in increasing order
        self._done: set[int] = set()  # finished but not at the head of _pending
        self._next: int | None = None  # one past the highest offset begun
        self._stored: int | None = None  # the last offset handed to store_offsets (or the first read)

    def begin(self, offset: int) -> None:
        if self._stored is None:
            self._stored = offset  # where reading started: nothing to store until something is done
        self._pending.append(offset)
        self._next = offset + 1

    def finish(self, offset: int) -> None:
        self._done.add(offset)
        pending = self._pending
        while pending and pending[0] in self._done:
            self._done.discard(pending.popleft())

    def committable(self) -> int | None:
        """The offset to store (the next message to read after a restart), or None when unchanged."""
        if self._next is None or self._stored is None:  # both set by the first begin
            return None
        mark = self._pending[0] if self._pending else self._next
        if mark <= self._stored:
            return None
        return mark

    def mark_stored(self, offset: int) -> None:
        self._stored = offset

    @property
    def in_flight(self) -> int:
        return len(self._pending)


class Watermarks:
    """Every assigned partition's watermark; shared by the event loop and the consumer's thread
    (rebalance callbacks run there), hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: dict[tuple[str, int], PartitionWatermark] = {}
        self._to_store: dict[tuple[str, int], int] = {}

    def begin(self, topic: str, partition: int, offset: int) -> PartitionWatermark:
        with self._lock:
            key = (topic, partition)
            state = self._partitions.get(key)
            if state is None:
                state = self._partitions[key] = PartitionWatermark(topic, partition)
            state.begin(offset)
            return state

    def finish(self, state: PartitionWatermark, offset: int) -> int | None:
        """Marks a message done; returns the offset to store, if the watermark moved (it is also kept
        for `take_offsets`)."""
        with self._lock:
            if state.revoked:
                return None
            state.finish(offset)
            mark = state.committable()
            if mark is not None:
                state.mark_stored(mark)
                self._to_store[(state.topic, state.partition)] = mark
            return mark

    def take_offsets(self) -> dict[tuple[str, int], int]:
        """The offsets to store since the last call (the consumer's thread stores them: confluent-kafka
        serialises calls on a consumer, so storing from the event loop would wait for `consume`)."""
        with self._lock:
            marks, self._to_store = self._to_store, {}
            return marks

    def forget(self, partitions: list[tuple[str, int]]) -> None:
        """The partitions were revoked (or lost): nothing of theirs is stored any more."""
        with self._lock:
            for key in partitions:
                self._to_store.pop(key, None)
                state = self._partitions.pop(key, None)
                if state is not None:
                    state.revoked = True

    def in_flight(self) -> int:
        with self._lock:
            return sum(state.in_flight for state in self._partitions.values())
