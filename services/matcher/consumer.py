"""The consumer loop of `hooks.outbox`: many messages in flight, offsets stored as per-partition watermarks.

confluent-kafka blocks, so `consume` runs in a thread and hands each batch to the event loop, where
every message becomes a task: validate -> resolve routes (and check the event type's JSON Schema,
services.matcher.schemas) -> hand to a sender (until acknowledged) or dead-letter. Offsets are stored
(`enable.auto.offset.store=False`, auto-commit on) only up to the lowest message still in flight of each
partition, so a crash re-reads what was not done and nothing else.
At `matcher_max_in_flight` it takes no more until half of them are done; if that takes longer than
PAUSE_AFTER_SECONDS, the partitions are paused so that the group is still served meanwhile.

A registry or sender outage is waited out; a message that keeps failing on its own while others get
through is dead-lettered after OWN_FAILURES_LIMIT tries (services.matcher.poison). While it is tried
again it does not count against `matcher_max_in_flight` (up to as many such messages again), so
poisons cannot stop the messages behind them.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from google.rpc import code_pb2
from prometheus_client import Counter

from hooks.events.v1 import event_pb2
from hooks.sender.v1 import deliveries_pb2
from services.common.backoff import backoff_delays
from services.common.kafka_messages import position_of
from services.common.logging import get_logger
from services.common.settings import KafkaSettings
from services.matcher import metrics
from services.matcher.dead_letters import DeadLetters
from services.matcher.events import identity_of, new_traceparent, to_event
from services.matcher.offsets import PartitionWatermark, Watermarks
from services.matcher.poison import OwnFailures
from services.matcher.route_cache import RegistryFailed, RegistryRejected, Resolution, RouteCache
from services.matcher.schemas import SchemaValidators
from services.matcher.senders import SenderPool, SenderUnavailable, Unsendable
from services.matcher.settings import MatcherSettings
from services.matcher.validation import (
    INVALID_VALUE,
    PROCESSING_ERROR,
    REJECTED_BY_REGISTRY,
    REJECTED_BY_SENDER,
    TOO_LARGE,
    UNDELIVERABLE,
    IncomingMessage,
    Rejected,
    parse_message,
    unregistered,
)

log = get_logger(__name__)

#: How long the consumer may stay full before it pauses its partitions (it does not call consume meanwhile).
PAUSE_AFTER_SECONDS = 3.0


def consumer_config(settings: MatcherSettings, kafka: KafkaSettings) -> dict[str, object]:
    session = settings.matcher_session_timeout_ms
    return {
        **kafka.client_config(),
        "group.id": settings.matcher_group_id,
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": session,
        "heartbeat.interval.ms": max(100, min(3000, session // 3)),
        # How long the broker may hold a fetch while there is nothing new: a broker that answers only
        # at the end of it (the embedded one) delays every message in a quiet moment by up to this.
        "fetch.wait.max.ms": max(1, settings.matcher_fetch_wait_max_ms),
        # librdkafka's statistics feed hooks_matcher_consumer_lag (see services.matcher.metrics).
        "statistics.interval.ms": max(0, settings.matcher_stats_interval_ms),
    }


class Counters:
    """What became of the messages (logs, tests). `handed_off`: accepted by a sender (which then
    delivers to each endpoint, retrying as it must), not yet delivered."""

    def __init__(self) -> None:
        self.handed_off = 0
        self.dead_lettered = 0
        self.unrouted = 0
        self.resent = 0


class OutboxConsumer:
    def __init__(
        self,
        settings: MatcherSettings,
        kafka: KafkaSettings,
        routes: RouteCache,
        senders: SenderPool,
        dead_letters: DeadLetters,
        *,
        schemas: SchemaValidators,
    ):
        """`schemas` checks each message against its event type's JSON Schema (services.matcher.schemas)."""
        self._settings = settings
        self._kafka = kafka
        self._routes = routes
        self._schemas = schemas
        self._senders = senders
        self._dead_letters = dead_letters
        self._max_in_flight = max(1, settings.matcher_max_in_flight)
        self._watermarks = Watermarks()
        self._tasks: set[asyncio.Task] = set()
        #: Tasks of messages that failed on their own (services.matcher.poison) and are being tried again.
        self._suspects: set[asyncio.Task] = set()
        self._room = asyncio.Event()
        self._paused = False
        self._stopping = False
        self._consumer: Consumer | None = None
        self._loop_task: asyncio.Task | None = None
        self.counters = Counters()
        #: Computes the consumer lag from librdkafka's statistics (and keeps the last figures).
        self.lag = metrics.LagFromStats()
        self._consumed_metric: dict[str, Counter] = {}
        #: Set once the group assigned partitions to this consumer (tests wait on it).
        self.assigned = asyncio.Event()
        #: The (topic, partition) pairs assigned now.
        self.assignment: set[tuple[str, int]] = set()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._consumer = Consumer({**consumer_config(self._settings, self._kafka), "stats_cb": self.lag})

        def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            self._paused = False  # a new assignment starts unpaused
            self.assignment = {(p.topic, p.partition) for p in partitions}
            log.info("partitions assigned", partitions=[f"{p.topic}/{p.partition}" for p in partitions])
            loop.call_soon_threadsafe(self.assigned.set)

        def on_revoke(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            # What is done is committed; what is in flight is forgotten (its new owner reads it again).
            self._store_offsets(consumer)
            self._commit(consumer)
            self._watermarks.forget([(p.topic, p.partition) for p in partitions])
            self.assignment -= {(p.topic, p.partition) for p in partitions}
            log.info("partitions revoked", partitions=[f"{p.topic}/{p.partition}" for p in partitions])

        def on_lost(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            self._watermarks.forget([(p.topic, p.partition) for p in partitions])
            self.assignment -= {(p.topic, p.partition) for p in partitions}
            log.warning("partitions lost", partitions=[f"{p.topic}/{p.partition}" for p in partitions])

        self._consumer.subscribe([self._kafka.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
        self._loop_task = asyncio.create_task(self._consume_forever(), name="outbox-consumer")
        log.info("consuming", topic=self._kafka.topic, group=self._settings.matcher_group_id)

    async def stop(self, grace: float) -> None:
        """Stops consuming, lets in-flight messages finish (at most `grace` seconds), stores and commits
        the offsets of what is done, and closes the consumer."""
        self._stopping = True
        self._room.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._tasks:
            log.info("waiting for in-flight messages", count=len(self._tasks), grace_seconds=grace)
            _, unfinished = await asyncio.wait(set(self._tasks), timeout=max(0.0, grace))
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished)
                log.warning("stopped with messages not done; they will be read again", count=len(unfinished))
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await asyncio.to_thread(self._store_offsets, consumer)
                await asyncio.to_thread(self._commit, consumer)
            finally:
                await asyncio.to_thread(consumer.close)
        log.info(
            "consumer closed",
            handed_off=self.counters.handed_off,
            dead_lettered=self.counters.dead_lettered,
            unrouted=self.counters.unrouted,
        )

    def _store_offsets(self, consumer: Consumer) -> None:
        """Stores the watermarks that moved (in the consumer's thread, between consume calls)."""
        marks = self._watermarks.take_offsets()
        if not marks:
            return
        try:
            consumer.store_offsets(offsets=[TopicPartition(t, p, o) for (t, p), o in marks.items()])
        except KafkaException as exc:  # a partition revoked meanwhile: its new owner reads it again
            log.debug("offsets not stored", error=str(exc))

    def _consume(self, consumer: Consumer, count: int, timeout: float) -> list[Message]:
        """Up to `count` messages, waiting at most `timeout` for the first one only: librdkafka's
        consume(count, timeout) waits until `count` arrived or the timeout passed, so at ordinary load
        every message waited out the timeout for a batch to fill. Here a batch is what has arrived
        already. (A message produced right after a registry change is still routed by it: the
        registry's write returns only once its change streams sent the change, services.registry.change_log.)"""
        self._store_offsets(consumer)
        messages = consumer.consume(1, timeout)
        if messages and count > 1:
            messages.extend(consumer.consume(count - 1, 0))
        return messages

    @staticmethod
    def _commit(consumer: Consumer) -> None:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("offset commit failed", error=str(exc))
        except RuntimeError:  # closed already
            pass

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def _occupied(self) -> int:
        """The in-flight messages that count against `matcher_max_in_flight`: a suspect (one that
        failed on its own and is tried again) does not, up to as many suspects again, so that poisons
        never take the room of the messages whose successes tell them from an outage."""
        return len(self._tasks) - min(len(self._suspects), self._max_in_flight)

    def _suspect(self) -> None:
        """The current message failed on its own: it no longer takes the room of a new one."""
        task = asyncio.current_task()
        if task is not None and task in self._tasks and task not in self._suspects:
            self._suspects.add(task)
            if self._occupied <= self._max_in_flight // 2:
                self._room.set()

    # -- the loop --------------------------------------------------------------------------------

    async def _consume_forever(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        batch_size = max(1, self._settings.matcher_consume_batch_size)
        while not self._stopping:
            try:
                room = self._max_in_flight - self._occupied
                if room <= 0:
                    await self._wait_for_room(consumer)
                    continue
                if self._paused:
                    consumer.resume(consumer.assignment())
                    self._paused = False
                messages = await asyncio.to_thread(self._consume, consumer, min(batch_size, room), 0.2)
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("consume error", error=str(error))
                        continue
                    self._begin(message)
            except Exception:
                log.exception("consumer loop error")
                await asyncio.sleep(1)

    async def _wait_for_room(self, consumer: Consumer) -> None:
        """Full: wait until half the in-flight messages are done. Briefly, librdkafka keeps prefetching
        (pausing would drop its queue and fetch again); when it lasts (a sender or the registry is
        down), the partitions are paused so that consume can serve the group without taking more."""
        self._room.clear()
        try:
            await asyncio.wait_for(self._room.wait(), PAUSE_AFTER_SECONDS if not self._paused else 1.0)
            return
        except TimeoutError:
            pass
        finally:
            self._store_offsets(consumer)  # no consume call is running now: this does not block
        if not self._paused:
            consumer.pause(consumer.assignment())
            self._paused = True
        # Serves rebalance callbacks and heartbeats; paused partitions return nothing.
        for message in await asyncio.to_thread(self._consume, consumer, 1, 0):
            if message.error() is None:
                self._begin(message)

    def _begin(self, message: Message) -> None:
        topic, partition, offset = position_of(message)
        state = self._watermarks.begin(topic, partition, offset)
        consumed = self._consumed_metric.get(topic)
        if consumed is None:  # labels() takes a lock: once per topic is enough
            consumed = self._consumed_metric[topic] = metrics.MESSAGES_CONSUMED.labels(topic)
        consumed.inc()
        metrics.IN_FLIGHT.inc()
        task = asyncio.create_task(self._handle(message, state))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._suspects.discard(task)
        metrics.IN_FLIGHT.dec()
        if self._occupied <= self._max_in_flight // 2:
            self._room.set()

    async def _handle(self, message: Message, state: PartitionWatermark) -> None:
        # Each message is its own task: what is bound here is on every log line of its work, no other's.
        structlog.contextvars.clear_contextvars()
        topic, partition, offset = position_of(message)
        try:
            with structlog.contextvars.bound_contextvars(topic=topic, partition=partition, offset=offset):
                await self._process(message)
        except asyncio.CancelledError:
            return  # not done: its offset is not stored
        except Exception as exc:
            log.exception("message processing failed", topic=topic, offset=offset)
            await self._reject(message, Rejected(PROCESSING_ERROR, f"the matcher failed on the message: {exc}"))
        self._watermarks.finish(state, offset)  # stored by the consumer's thread

    async def _reject(self, message: Message, rejected: Rejected) -> None:
        await self._dead_letters.send(message, rejected)
        self.counters.dead_lettered += 1
        metrics.MESSAGES_DEAD_LETTERED.labels(rejected.reason).inc()

    async def _process(self, message: Message) -> None:
        try:
            incoming = parse_message(message.value(), self._settings.matcher_max_message_bytes)
        except Rejected as rejected:
            await self._reject(message, rejected)
            return
        identity = identity_of(incoming, *position_of(message))
        traceparent = new_traceparent()
        with structlog.contextvars.bound_contextvars(
            message_id=identity, account_id=incoming.account_id, trace_id=traceparent.split("-")[1]
        ):
            await self._route(message, incoming, identity, traceparent)

    async def _route(self, message: Message, incoming: IncomingMessage, identity: str, traceparent: str) -> None:
        """Resolves the message's routes and hands it to a sender until one acknowledges it; a stage
        that gives up on it raises Rejected, and it is dead-lettered."""
        try:
            try:
                event = to_event(incoming, identity)
            except Exception as exc:  # noqa: BLE001 - e.g. a value protobuf cannot hold
                raise Rejected(INVALID_VALUE, f"field 'message' cannot be carried: {exc}", "message") from None
            _, partition, _ = position_of(message)
            trial = _Trial(self._routes, self._senders, self._settings.matcher_max_backoff_seconds, partition)
            while True:
                # Routes are resolved again on every attempt: a change meanwhile (an endpoint deleted) counts.
                resolution = await self._resolve(incoming, trial)
                if resolution is not None:
                    if not resolution.endpoint_ids:
                        self.counters.unrouted += 1
                        metrics.MESSAGES_UNROUTED.inc()
                        log.debug("message has no route")
                        return
                    if await self._hand_off(event, resolution, traceparent, trial):
                        return
                await trial.pause()
        except Rejected as rejected:
            await self._reject(message, rejected)

    async def _resolve(self, incoming: IncomingMessage, trial: _Trial) -> Resolution | None:
        """The message's routes, once it matches its event type's schema; None to ask again (the registry
        failed on it, not for the first OWN_FAILURES_LIMIT times); raises Rejected when there is nothing
        to deliver it to, or it breaks the schema."""
        key = (incoming.account_id, incoming.application, incoming.event_type, incoming.level)
        try:
            resolution = await self._routes.resolve(*key)
            # A schema version not compiled yet is asked of the registry: its failures count as the question's.
            await self._schemas.check(key, resolution.schema_version, incoming.message)
        except RegistryRejected as exc:
            raise Rejected(REJECTED_BY_REGISTRY, f"the registry rejected the message: {exc}") from None
        except RegistryFailed as exc:
            self._suspect()
            if trial.registry.failed():
                raise Rejected(
                    REJECTED_BY_REGISTRY,
                    f"the registry kept failing on this message ({exc}) while answering others: "
                    f"{trial.registry.count} failures of its own",
                ) from None
            log.warning(
                "the registry failed on the message; asking again", problem=str(exc), own_failures=trial.registry.count
            )
            return None
        if not resolution.registered:
            raise unregistered(
                resolution.unregistered, resolution.reason, incoming.application, incoming.event_type, incoming.level
            )
        return resolution

    async def _hand_off(self, event: event_pb2.Event, resolution: Resolution, traceparent: str, trial: _Trial) -> bool:
        """Hands the event to a sender for every endpoint at once: True once acknowledged, False to send
        it again; raises Rejected when that would not help."""
        request = deliveries_pb2.DeliverRequest(
            request_id=uuid.uuid4().hex, event=event, endpoint_ids=resolution.endpoint_ids, traceparent=traceparent
        )
        index, response, failure = await self._senders.deliver_once(
            request, trial.avoid, alone=trial.suspect, affinity=trial.partition
        )
        if response is not None:
            self.counters.handed_off += 1
            metrics.MESSAGES_ROUTED.inc()
            metrics.DELIVERIES_HANDED.inc(len(request.endpoint_ids))
            log.info("message handed to a sender", endpoints=len(request.endpoint_ids))
            return True
        if isinstance(failure, Unsendable):
            raise Rejected(
                TOO_LARGE if failure.too_large else INVALID_VALUE, f"the message cannot be sent to a sender: {failure}"
            )
        assert isinstance(failure, SenderUnavailable)
        if failure.code == code_pb2.INVALID_ARGUMENT:
            raise Rejected(REJECTED_BY_SENDER, f"the sender rejected the message: {failure}")
        self.counters.resent += 1
        metrics.RESENDS.inc()
        trial.avoid = index
        if not failure.outage:
            self._suspect()
            trial.suspect = True
            if trial.senders.failed():
                raise Rejected(
                    UNDELIVERABLE,
                    f"the senders kept refusing this message while accepting others: {trial.senders.count} "
                    f"failures of its own, the last: {failure}",
                )
        log.warning("delivery not acknowledged; sending again", problem=str(failure), own_failures=trial.senders.count)
        return False


class _Trial:
    """One message's way through the registry and the senders: the backoff between tries, its own
    failures at each (services.matcher.poison), and how the next hand-off goes."""

    def __init__(self, routes: RouteCache, senders: SenderPool, max_backoff: float, partition: int):
        self._delays = backoff_delays(maximum=max_backoff)
        #: The message's partition: one partition's messages go to the senders on one stream, in order
        #: (so that an ORDERED endpoint gets them in the order they were produced to the partition).
        self.partition = partition
        self.registry = OwnFailures(routes.answers)
        self.senders = OwnFailures(senders.acknowledged)
        #: The stream that failed last (the next hand-off prefers another).
        self.avoid: int | None = None
        #: A sender failed on it with a code that is not an outage's: hand it off on a call of its own from now on.
        self.suspect = False

    async def pause(self) -> None:
        await asyncio.sleep(next(self._delays))
