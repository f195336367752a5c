"""hooks.sender.v1.DeliveryService: the matcher's Deliver and DeliverBatch streams, and the
account-scoped calls on deliveries (get, list, retry, watch, test message)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import grpc
from google.rpc import code_pb2, status_pb2

from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
from hooks_client.envelope import build_envelope
from services.common import builtin_application
from services.common.bounds import MAX_ENDPOINT_ID, MAX_STATS_ENDPOINTS
from services.common.db import utcnow
from services.common.errors import FieldViolations, NotFound, Unavailable, abort, status_of_exception
from services.common.identity import require_account
from services.common.limits import json_value_problem, string_problem, text_problem
from services.common.logging import get_logger
from services.sender import watch_cursor
from services.sender.conversion import (
    STATUS_FROM_PROTO,
    attempt_to_proto,
    delivery_to_proto,
    event_to_body,
    timestamp,
    timestamp_problem,
)
from services.sender.deliverer import Deliverer
from services.sender.dispatcher import Dispatcher
from services.sender.metrics import DELIVERIES_QUEUED
from services.sender.models import Delivery
from services.sender.store import (
    PAGES,
    DeliveryFilter,
    DeliveryStore,
    EndpointFigures,
    NewDelivery,
    QueuedDelivery,
    encode_event,
)
from services.sender.targets import EndpointDeleted, TargetCache
from services.sender.watch_hub import WatchHub

log = get_logger(__name__)

#: Most Deliver requests stored in one transaction (whichever stream messages they came in).
MAX_BATCH = 256
#: Requests read ahead of the one being stored, per stream.
READ_AHEAD = 1024
#: How long a batch waits for room in the workers before what does not fit is stored for the poller:
#: long enough that a burst stays on the hot path (the next batch grows meanwhile), short enough
#: that a backlog stuck on a dead endpoint slows the stream only a little.
ROOM_WAIT_SECONDS = 0.1
#: Most bytes of deliveries in one ListDeliveries page (well under HOOKS_GRPC_MAX_MESSAGE_BYTES):
#: a page ends before the delivery that would pass it, though it always holds at least one.
MAX_PAGE_BYTES = 1024 * 1024
#: The names and ids of an event checked by `services.common.limits.string_problem`.
EVENT_STRING_FIELDS = ("id", "application", "event_type", "level", "account_id")
#: The application of the events SendTestMessage sends.
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
DEFAULT_TEST_MESSAGE = "This is a test notification from hooks."
_END = object()
#: A Deliver or DeliverBatch stream message.
_Message = TypeVar("_Message")


def validate_deliver_request(request: deliveries_pb2.DeliverRequest) -> FieldViolations:
    """What is wrong with a request, per field, by the limits every entry enforces
    (`services.common.limits`), except its message (see `event_json_of`)."""
    violations = FieldViolations()
    if not request.request_id:
        violations.add("request_id", "is required")
    if not request.HasField("event"):
        violations.add("event", "is required")
    event = request.event
    if not event.id:
        violations.add("event.id", "is required")
    for name in EVENT_STRING_FIELDS:
        problem = string_problem(name, getattr(event, name))
        if problem:
            violations.add(f"event.{name}", problem)
    if event.HasField("timestamp"):
        problem = timestamp_problem(event.timestamp)
        if problem:
            violations.add("event.timestamp", problem)
    _endpoint_ids_problems(request.endpoint_ids, violations)
    return violations


def event_json_of(request: deliveries_pb2.DeliverRequest) -> str:
    """The request's event as the JSON its deliveries store and send; raises FieldViolations naming
    each field that could not be carried (a NaN, a depth beyond the limit, a NUL in a name...)."""
    violations = validate_deliver_request(request)
    if violations:
        raise violations
    body = event_to_body(request.event)
    problem = json_value_problem(body["message"], "event.message")
    if problem:
        raise FieldViolations([("event.message", problem)])
    return encode_event(body)


def _new_deliveries(request: deliveries_pb2.DeliverRequest) -> list[NewDelivery]:
    """The deliveries a request asks for, one per endpoint; raises FieldViolations when it is bad."""
    event_json = event_json_of(request)  # once per event, not per endpoint
    traceparent = request.traceparent if TRACEPARENT.match(request.traceparent) else ""
    event = request.event
    return [
        NewDelivery(event.account_id, endpoint_id, event.application, event.id, event_json, traceparent)
        for endpoint_id in request.endpoint_ids
    ]


#: At most this many deliveries are queued again by one RetryDeliveries call.
MAX_BULK_RETRY = 10_000


def _endpoint_ids_problems(endpoint_ids: Sequence[str], violations: FieldViolations) -> None:
    """Adds what is wrong with a list of endpoint ids (`endpoint_ids`: one or more, each 1 to 64
    characters, none of them control characters), naming each bad one by its index."""
    if not endpoint_ids:
        violations.add("endpoint_ids", "at least one endpoint id is required")
    for index, endpoint_id in enumerate(endpoint_ids):
        if not endpoint_id or len(endpoint_id) > MAX_ENDPOINT_ID or text_problem(endpoint_id):
            violations.add(
                f"endpoint_ids[{index}]", f"must be 1 to {MAX_ENDPOINT_ID} characters, none of them control characters"
            )


def _stats_of(endpoint_id: str, figures: EndpointFigures | None) -> deliveries_pb2.EndpointStats:
    stats = deliveries_pb2.EndpointStats(endpoint_id=endpoint_id)
    if figures is None:
        return stats
    if figures.last_attempt_at is not None:
        stats.last_attempt_time.CopyFrom(timestamp(figures.last_attempt_at))
        stats.last_attempt_succeeded = figures.last_attempt_succeeded
        stats.last_http_status = figures.last_http_status
    stats.attempts_24h = figures.attempts
    stats.succeeded_attempts_24h = figures.succeeded
    if figures.failing_since is not None:
        stats.failing_since.CopyFrom(timestamp(figures.failing_since))
    stats.pending_count = figures.pending
    return stats


def _created_between(
    request: deliveries_pb2.ListDeliveriesRequest | deliveries_pb2.RetryDeliveriesRequest, violations: FieldViolations
) -> tuple[datetime | None, datetime | None]:
    """The request's `created_after` and `created_before` (None where unset); a range that ends
    before it starts is a violation."""
    after = request.created_after.ToDatetime(tzinfo=UTC) if request.HasField("created_after") else None
    before = request.created_before.ToDatetime(tzinfo=UTC) if request.HasField("created_before") else None
    if after is not None and before is not None and before <= after:
        violations.add("created_before", "must be later than created_after")
    return after, before


@dataclass(slots=True)
class _Accepted:
    """A request that passed validation: its answer (to fill in) and its deliveries."""

    response: deliveries_pb2.DeliverResponse
    items: list[NewDelivery]


def _single(request: deliveries_pb2.DeliverRequest) -> tuple[deliveries_pb2.DeliverRequest]:
    return (request,)


def _requests_of_batch(batch: deliveries_pb2.DeliverBatchRequest) -> Iterable[deliveries_pb2.DeliverRequest]:
    return batch.requests


def _status(code: int, message: str = "") -> status_pb2.Status:
    return status_pb2.Status(code=code, message=message)


class DeliveryServicer(deliveries_pb2_grpc.DeliveryServiceServicer):
    def __init__(
        self,
        store: DeliveryStore,
        dispatcher: Dispatcher,
        deliverer: Deliverer,
        targets: TargetCache,
        hub: WatchHub,
        *,
        retention: timedelta,
    ):
        """`retention`: how long finished deliveries are kept (a resume token older is refused)."""
        self.retention = retention
        self.store = store
        self.dispatcher = dispatcher
        self.deliverer = deliverer
        self.targets = targets
        self.hub = hub
        self._background: set[asyncio.Task] = set()

    # -- Deliver ---------------------------------------------------------------------------------

    async def Deliver(
        self, request_iterator: AsyncIterable[deliveries_pb2.DeliverRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[deliveries_pb2.DeliverResponse]:
        """One request per message: the one-request case of DeliverBatch's handler."""
        async for responses in self._serve_deliveries(request_iterator, _single):
            for response in responses:
                yield response

    async def DeliverBatch(
        self, request_iterator: AsyncIterable[deliveries_pb2.DeliverBatchRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[deliveries_pb2.DeliverBatchResponse]:
        """Several requests per message, answered per request: the same handler as Deliver."""
        async for responses in self._serve_deliveries(request_iterator, _requests_of_batch):
            yield deliveries_pb2.DeliverBatchResponse(responses=responses)

    async def _serve_deliveries(
        self, messages: AsyncIterable[_Message], unpack: Callable[[_Message], Iterable[deliveries_pb2.DeliverRequest]]
    ) -> AsyncIterator[list[deliveries_pb2.DeliverResponse]]:
        """Stores whatever requests have arrived together in one transaction and yields their answers
        after the commit (then hands the new deliveries straight to the workers). `unpack` turns one
        stream message into its requests, so both RPCs share this one code path."""
        inbox: asyncio.Queue = asyncio.Queue()
        room = asyncio.Semaphore(READ_AHEAD)

        async def read() -> None:
            try:
                async for message in messages:
                    for request in unpack(message):
                        await room.acquire()
                        inbox.put_nowait(request)
            finally:
                inbox.put_nowait(_END)

        reader = asyncio.create_task(read())
        try:
            finished = False
            while not finished:
                item = await inbox.get()
                if item is _END:
                    break
                batch = [item]
                while len(batch) < MAX_BATCH and not inbox.empty():
                    item = inbox.get_nowait()
                    if item is _END:
                        finished = True
                        break
                    batch.append(item)
                for _ in batch:
                    room.release()
                yield await self._store_batch(batch)
            if reader.done() and not reader.cancelled() and (error := reader.exception()) is not None:
                raise error
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _store_batch(self, batch: list[deliveries_pb2.DeliverRequest]) -> list[deliveries_pb2.DeliverResponse]:
        """Answers each request of the batch on its own: one that cannot be taken fails alone
        (INVALID_ARGUMENT naming its fields, or the value the database refused), the others are
        stored together, in one transaction; an outage fails them all (UNAVAILABLE: send again)."""
        responses = [deliveries_pb2.DeliverResponse(request_id=request.request_id) for request in batch]
        accepted: list[_Accepted] = []
        for response, request in zip(responses, batch, strict=True):
            try:
                accepted.append(_Accepted(response, _new_deliveries(request)))
            except Exception as exc:  # noqa: BLE001 - one request's problem is its own answer; the stream goes on
                response.status.CopyFrom(status_of_exception(exc, "sender", log))
        if not accepted:
            return responses
        # Those their lanes have room for are stored leased to this sender and handed straight to
        # them; the rest are stored due, for the poller (of this sender or another) to take.
        wanted = sum(len(entry.items) for entry in accepted)
        if self.dispatcher.room() < wanted:
            await self.dispatcher.wait_for_room(wanted, ROOM_WAIT_SECONDS)
        room = self.dispatcher.rooms({item.endpoint_id for entry in accepted for item in entry.items})
        try:
            stored = [(accepted, await self._store(accepted, room))]
        except Exception as exc:  # noqa: BLE001 - answered per request below, by the one error mapping
            status = status_of_exception(exc, "sender", log)
            if status.code != code_pb2.INVALID_ARGUMENT:
                # An outage: every request hears of it (UNAVAILABLE), and is sent again.
                for entry in accepted:
                    entry.response.status.CopyFrom(status)
                return responses
            # A value the database refuses (a NUL in PostgreSQL's text...) is one request's doing:
            # each is stored alone, so that only the offending one is refused.
            log.warning(
                "the database refused a batch of deliveries; storing its requests one by one", requests=len(accepted)
            )
            stored = []
            for entry in accepted:
                try:
                    ids, created = await self._store([entry], room)
                except Exception as exc:  # noqa: BLE001 - this request's own answer
                    entry.response.status.CopyFrom(status_of_exception(exc, "sender", log))
                    continue
                stored.append(([entry], (ids, created)))
                for delivery in created:
                    if delivery.claimed_by == self.store.sender_id:
                        room[delivery.endpoint_id] -= 1
        for entries, (ids, created) in stored:
            for entry in entries:
                entry.response.status.CopyFrom(_status(code_pb2.OK))
                entry.response.delivery_ids.extend(ids[item.key] for item in entry.items)
            DELIVERIES_QUEUED.inc(len(created))
            self._hand_over(created)
        return responses

    async def _store(
        self, entries: list[_Accepted], lease: dict[str, int]
    ) -> tuple[dict[tuple[str, str, str], str], list[QueuedDelivery]]:
        """Stores the deliveries of these requests in one transaction (see DeliveryStore.enqueue)."""
        return await self.store.enqueue([item for entry in entries for item in entry.items], lease=lease)

    def _hand_over(self, created: list[QueuedDelivery]) -> None:
        left: list[str] = []
        for delivery in created:
            if self.hub.wants(delivery.account_id):
                self.deliverer.announce(delivery.as_row())
            if delivery.claimed_by != self.store.sender_id:
                self.dispatcher.left_to_poller(delivery.endpoint_id)
                continue
            # Room was set aside before storing; other streams may have taken some since, so the
            # backlog may overshoot by what was stored meanwhile.
            if not self.dispatcher.submit(delivery.id, delivery.endpoint_id, delivery, True):
                left.append(delivery.id)
        if left:
            # The workers are closing: give the leases back, so the poller (of any sender) takes them.
            task = asyncio.create_task(self.store.release(left))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # -- account-scoped calls --------------------------------------------------------------------

    async def GetDelivery(
        self, request: deliveries_pb2.GetDeliveryRequest, context: grpc.aio.ServicerContext
    ) -> deliveries_pb2.GetDeliveryResponse:
        account = await require_account(context)
        if not request.id:
            raise FieldViolations([("id", "is required")])
        found = await self.store.get(account, request.id)
        if found is None:
            raise NotFound(f"delivery {request.id!r} not found")
        delivery, attempts = found
        return deliveries_pb2.GetDeliveryResponse(delivery=delivery_to_proto(delivery, attempts))

    async def ListDeliveries(
        self, request: deliveries_pb2.ListDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> deliveries_pb2.ListDeliveriesResponse:
        """A page of at most `page_size` deliveries and at most about MAX_PAGE_BYTES (always at
        least one delivery): where the bytes run out first, `next_page_token` goes on from there."""
        account = await require_account(context)
        violations = FieldViolations()
        status = None
        if request.status != deliveries_pb2.DELIVERY_STATUS_UNSPECIFIED:
            status = STATUS_FROM_PROTO.get(request.status)
            if status is None:
                violations.add("status", "is not a delivery status")
        after, before = _created_between(request, violations)
        which = DeliveryFilter(request.endpoint_id, status, request.event_id, after, before, request.application)
        query = {
            "endpoint_id": request.endpoint_id,
            "status": request.status,
            "event_id": request.event_id,
            "application": request.application,
            "created_after": after.isoformat() if after else "",
            "created_before": before.isoformat() if before else "",
        }
        page = PAGES.page(request.page_size, request.page_token, query, violations=violations)
        # The page's deliveries, as far as they fit without their attempts...
        selected: list[tuple[Delivery, deliveries_pb2.Delivery]] = []
        size, more = 0, True
        rows = self.store.list_page(account, page, which)
        async with contextlib.aclosing(rows):
            async for row in rows:
                if len(selected) == page.size:
                    break  # there is more
                delivery = delivery_to_proto(row)
                size += _entry_size(delivery)
                if selected and size > MAX_PAGE_BYTES:
                    break
                selected.append((row, delivery))
            else:
                more = False  # the last page
        # ...then their attempts, in one query for the page, which may end it sooner.
        attempts = await self.store.attempts_of([row.id for row, _ in selected])
        response = deliveries_pb2.ListDeliveriesResponse()
        size, last = 0, None
        for row, delivery in selected:
            delivery.attempts.extend(attempt_to_proto(attempt) for attempt in attempts.get(row.id, ()))
            size += _entry_size(delivery)
            if response.deliveries and size > MAX_PAGE_BYTES:
                more = True
                break
            response.deliveries.append(delivery)
            last = row
        if more:
            assert last is not None  # a page holds at least one delivery
            response.next_page_token = PAGES.token_after(last, page)
        return response

    async def RetryDelivery(
        self, request: deliveries_pb2.RetryDeliveryRequest, context: grpc.aio.ServicerContext
    ) -> deliveries_pb2.RetryDeliveryResponse:
        account = await require_account(context)
        if not request.id:
            raise FieldViolations([("id", "is required")])
        delivery = await self.store.retry(account, request.id)
        if delivery is None:
            raise NotFound(f"delivery {request.id!r} not found")
        self.deliverer.announce(delivery)
        if delivery.claimed_by != self.store.sender_id or not self.dispatcher.submit(delivery.id, delivery.endpoint_id):
            self.dispatcher.wake()
        return deliveries_pb2.RetryDeliveryResponse(delivery=delivery_to_proto(delivery))

    async def RetryDeliveries(
        self, request: deliveries_pb2.RetryDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> deliveries_pb2.RetryDeliveriesResponse:
        account = await require_account(context)
        violations = FieldViolations()
        after, before = _created_between(request, violations)
        if violations:
            raise violations
        which = DeliveryFilter(endpoint_id=request.endpoint_id, created_after=after, created_before=before)
        queued, more = await self.store.retry_failed(account, which, MAX_BULK_RETRY)
        if queued:
            self.dispatcher.wake()
        log.info("failed deliveries queued again", queued=queued, more=more)
        return deliveries_pb2.RetryDeliveriesResponse(queued=queued, more=more)

    async def BatchGetEndpointStats(
        self, request: deliveries_pb2.BatchGetEndpointStatsRequest, context: grpc.aio.ServicerContext
    ) -> deliveries_pb2.BatchGetEndpointStatsResponse:
        """One EndpointStats per id asked, in the request's order; an id that is not one of the
        account's endpoints gets zero figures (as one that has had no delivery): never another's."""
        account = await require_account(context)
        violations = FieldViolations()
        if len(request.endpoint_ids) > MAX_STATS_ENDPOINTS:
            violations.add("endpoint_ids", f"at most {MAX_STATS_ENDPOINTS} ids in one call")
        else:
            _endpoint_ids_problems(request.endpoint_ids, violations)
        if violations:
            raise violations
        figures = await self.store.endpoint_figures(account, request.endpoint_ids)
        return deliveries_pb2.BatchGetEndpointStatsResponse(
            stats=[_stats_of(endpoint_id, figures.get(endpoint_id)) for endpoint_id in request.endpoint_ids]
        )

    async def WatchDeliveries(
        self, request: deliveries_pb2.WatchDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[deliveries_pb2.WatchDeliveriesResponse]:
        """Streams the account's changes from the moment the call's initial metadata is sent (a
        client that waits for it misses nothing after); QuotaExceeded when the account already
        watches as many times as HOOKS_SENDER_WATCH_STREAMS_PER_ACCOUNT allows.

        With a resume token, what changed since it comes first (services/sender/watch_cursor.py):
        the subscription is made before the database is read, so a change committed meanwhile is in
        one or the other (or both: a live change no newer than the state already sent of its
        delivery is dropped)."""
        account = await require_account(context)
        cursor = None
        if request.resume_token:
            cursor = watch_cursor.parse_token(request.resume_token)
            watch_cursor.check_age(cursor, utcnow(), self.retention)
        subscription = self.hub.subscribe(account, request.endpoint_id)
        subscribed_at = utcnow()
        try:
            await context.send_initial_metadata(())
            # Delivery id -> update time sent, of what the catch-up read that changed since the
            # subscription began (only those may also be queued live).
            caught_up: dict[str, datetime] = {}
            if cursor is not None:
                changes = self.store.changed_since(
                    account, cursor.update_time - watch_cursor.RESUME_OVERLAP, request.endpoint_id
                )
                async with contextlib.aclosing(changes):
                    async for row in changes:
                        if row.id == cursor.delivery_id and row.updated_at <= cursor.update_time:
                            continue  # the change the token was made from: the watcher has it
                        if row.updated_at >= subscribed_at - watch_cursor.RESUME_OVERLAP:
                            caught_up[row.id] = row.updated_at
                        yield _watched(delivery_to_proto(row))
            while True:
                if subscription.overflowed and subscription.queue.empty():
                    await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, "the watcher fell behind; watch again")
                delivery = await subscription.queue.get()
                sent = caught_up.get(delivery.id)
                if sent is not None and delivery.update_time.ToDatetime(tzinfo=UTC) <= sent:
                    continue
                yield _watched(delivery)
        finally:
            self.hub.unsubscribe(subscription)

    async def SendTestMessage(
        self, request: deliveries_pb2.SendTestMessageRequest, context: grpc.aio.ServicerContext
    ) -> deliveries_pb2.SendTestMessageResponse:
        account = await require_account(context)
        if not request.endpoint_id:
            raise FieldViolations([("endpoint_id", "is required")])
        try:
            target = await self.targets.get(request.endpoint_id)
        except EndpointDeleted:
            target = None
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"the registry is unavailable ({exc.code().name}); try again shortly") from exc
        if target is None or target.account_id != account:
            raise NotFound(f"endpoint {request.endpoint_id!r} not found")
        body = build_envelope(
            id=f"test-{uuid.uuid4()}",
            application=builtin_application.NAME,
            event_type=builtin_application.TEST,
            level="",
            account_id=account,
            timestamp=datetime.now(UTC),
            message=request.message or DEFAULT_TEST_MESSAGE,
        )
        new = NewDelivery(account, request.endpoint_id, builtin_application.NAME, body["id"], encode_event(body))
        ids, created = await self.store.enqueue([new])
        delivery_id = ids[new.key]
        for queued in created:
            self.deliverer.announce(queued.as_row())
        await self.dispatcher.run_now(delivery_id, request.endpoint_id)
        found = await self.store.get(account, delivery_id)
        if found is None:  # already pruned: a retention shorter than the attempt (services/sender/retention.py)
            raise NotFound(f"delivery {delivery_id!r} not found")
        delivery, attempts = found
        return deliveries_pb2.SendTestMessageResponse(delivery=delivery_to_proto(delivery, attempts))


def _watched(delivery: deliveries_pb2.Delivery) -> deliveries_pb2.WatchDeliveriesResponse:
    return deliveries_pb2.WatchDeliveriesResponse(delivery=delivery, resume_token=watch_cursor.token_of(delivery))


def _entry_size(delivery: deliveries_pb2.Delivery) -> int:
    """The bytes a delivery adds to a ListDeliveriesResponse: itself, its field tag and length."""
    size = delivery.ByteSize()
    return size + 1 + max(1, (size.bit_length() + 6) // 7)
