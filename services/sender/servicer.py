"""hooks.sender.v1.DeliveryService: the matcher's Deliver and DeliverBatch streams, and the
account-scoped calls on deliveries (get, list, retry, watch, test message)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime

import grpc
from google.rpc import code_pb2, status_pb2

from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
from services.common.errors import FieldViolations, abort, abort_invalid
from services.common.identity import require_account
from services.common.logging import get_logger
from services.sender.conversion import STATUS_FROM_PROTO, delivery_to_proto, event_to_body
from services.sender.deliverer import Deliverer
from services.sender.dispatcher import Dispatcher
from services.sender.metrics import DELIVERIES_QUEUED
from services.sender.store import DeliveryStore, NewDelivery, PageCursor, QueuedDelivery, encode_event
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
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
DEFAULT_TEST_MESSAGE = "This is a test notification from hooks."
_END = object()


def validate_deliver_request(request: deliveries_pb2.DeliverRequest) -> FieldViolations:
    violations = FieldViolations()
    if not request.request_id:
        violations.add("request_id", "is required")
    if not request.HasField("event"):
        violations.add("event", "is required")
    event = request.event
    for name, limit in (("id", 512), ("account_id", 64), ("application", 255), ("event_type", 255)):
        value = getattr(event, name)
        if not value:
            violations.add(f"event.{name}", "is required")
        elif len(value) > limit:
            violations.add(f"event.{name}", f"is longer than {limit} characters")
    if not request.endpoint_ids:
        violations.add("endpoint_ids", "at least one endpoint id is required")
    for index, endpoint_id in enumerate(request.endpoint_ids):
        if not endpoint_id or len(endpoint_id) > 64:
            violations.add(f"endpoint_ids[{index}]", "must be 1 to 64 characters")
    return violations


def _single(request: deliveries_pb2.DeliverRequest) -> tuple[deliveries_pb2.DeliverRequest]:
    return (request,)


def _requests_of_batch(batch: deliveries_pb2.DeliverBatchRequest):
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
    ):
        self.store = store
        self.dispatcher = dispatcher
        self.deliverer = deliverer
        self.targets = targets
        self.hub = hub
        self._background: set[asyncio.Task] = set()

    # -- Deliver ---------------------------------------------------------------------------------

    async def Deliver(self, request_iterator, context):
        """One request per message: the one-request case of DeliverBatch's handler."""
        async for responses in self._serve_deliveries(request_iterator, _single):
            for response in responses:
                yield response

    async def DeliverBatch(self, request_iterator, context):
        """Several requests per message, answered per request: the same handler as Deliver."""
        async for responses in self._serve_deliveries(request_iterator, _requests_of_batch):
            yield deliveries_pb2.DeliverBatchResponse(responses=responses)

    async def _serve_deliveries(
        self, messages, unpack: Callable[[object], Iterable[deliveries_pb2.DeliverRequest]]
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
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                raise reader.exception()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _store_batch(self, batch: list[deliveries_pb2.DeliverRequest]) -> list[deliveries_pb2.DeliverResponse]:
        responses: list[deliveries_pb2.DeliverResponse] = []
        valid: list[deliveries_pb2.DeliverRequest] = []
        items: list[NewDelivery] = []
        for request in batch:
            violations = validate_deliver_request(request)
            if violations:
                responses.append(
                    deliveries_pb2.DeliverResponse(request_id=request.request_id, status=violations.to_status())
                )
                continue
            event_json = encode_event(event_to_body(request.event))  # once per event, not per endpoint
            traceparent = request.traceparent if TRACEPARENT.match(request.traceparent) else ""
            valid.append(request)
            account_id, event_id = request.event.account_id, request.event.id
            items.extend(
                NewDelivery(account_id, endpoint_id, event_id, event_json, traceparent)
                for endpoint_id in request.endpoint_ids
            )
            responses.append(deliveries_pb2.DeliverResponse(request_id=request.request_id))
        if not items:
            return responses
        # Those the workers have room for are stored leased to this sender and handed straight to
        # them; the rest are stored due, for the poller (of this sender or another) to take.
        room = self.dispatcher.room()
        if room < len(items):
            room = await self.dispatcher.wait_for_room(len(items), ROOM_WAIT_SECONDS)
        try:
            ids, created = await self.store.enqueue(items, lease=room)
        except Exception:  # noqa: BLE001 - answer "not queued" and let the caller retry
            log.exception("storing deliveries failed", requests=len(valid))
            for response in responses:
                if not response.HasField("status"):
                    response.status.CopyFrom(_status(code_pb2.UNAVAILABLE, "the deliveries could not be stored; retry"))
            return responses
        requests = iter(valid)
        for response in responses:
            if response.HasField("status"):
                continue
            request = next(requests)
            response.status.CopyFrom(_status(code_pb2.OK))
            response.delivery_ids.extend(ids[(request.event.id, e)] for e in request.endpoint_ids)
        DELIVERIES_QUEUED.inc(len(created))
        self._hand_over(created)
        return responses

    def _hand_over(self, created: list[QueuedDelivery]) -> None:
        left: list[str] = []
        for delivery in created:
            if self.hub.wants(delivery.account_id):
                self.deliverer.announce(delivery.as_row())
            if delivery.claimed_by != self.store.sender_id:
                self.dispatcher.left_to_poller()
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

    async def GetDelivery(self, request, context):
        account = await require_account(context)
        if not request.id:
            await abort_invalid(context, [("id", "is required")])
        found = await self.store.get(account, request.id)
        if found is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"delivery {request.id!r} not found")
        delivery, attempts = found
        return deliveries_pb2.GetDeliveryResponse(delivery=delivery_to_proto(delivery, attempts))

    async def ListDeliveries(self, request, context):
        account = await require_account(context)
        violations = FieldViolations()
        if request.page_size < 0:
            violations.add("page_size", "must not be negative")
        cursor = None
        if request.page_token:
            try:
                cursor = PageCursor.decode(request.page_token)
            except ValueError as exc:
                violations.add("page_token", str(exc))
        status = None
        if request.status != deliveries_pb2.DELIVERY_STATUS_UNSPECIFIED:
            status = STATUS_FROM_PROTO.get(request.status)
            if status is None:
                violations.add("status", "is not a delivery status")
        if violations:
            await abort_invalid(context, violations)
        page_size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        rows, next_cursor = await self.store.list(
            account, page_size, cursor, request.endpoint_id, status, request.event_id
        )
        return deliveries_pb2.ListDeliveriesResponse(
            deliveries=[delivery_to_proto(row) for row in rows],
            next_page_token=next_cursor.encode() if next_cursor else "",
        )

    async def RetryDelivery(self, request, context):
        account = await require_account(context)
        if not request.id:
            await abort_invalid(context, [("id", "is required")])
        delivery = await self.store.retry(account, request.id)
        if delivery is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"delivery {request.id!r} not found")
        self.deliverer.announce(delivery)
        if delivery.claimed_by != self.store.sender_id or not self.dispatcher.submit(delivery.id, delivery.endpoint_id):
            self.dispatcher.wake()
        return deliveries_pb2.RetryDeliveryResponse(delivery=delivery_to_proto(delivery))

    async def WatchDeliveries(self, request, context):
        account = await require_account(context)
        subscription = self.hub.subscribe(account, request.endpoint_id)
        try:
            while True:
                if subscription.overflowed and subscription.queue.empty():
                    await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, "the watcher fell behind; watch again")
                delivery = await subscription.queue.get()
                yield deliveries_pb2.WatchDeliveriesResponse(delivery=delivery)
        finally:
            self.hub.unsubscribe(subscription)

    async def SendTestMessage(self, request, context):
        account = await require_account(context)
        if not request.endpoint_id:
            await abort_invalid(context, [("endpoint_id", "is required")])
        try:
            target = await self.targets.get(request.endpoint_id)
        except EndpointDeleted:
            target = None
        except grpc.aio.AioRpcError as exc:
            await abort(context, grpc.StatusCode.UNAVAILABLE, f"the registry is unavailable: {exc.code().name}")
        if target is None or target.account_id != account:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"endpoint {request.endpoint_id!r} not found")
        now = datetime.now(UTC)
        body = {
            "id": f"test-{uuid.uuid4()}",
            "application": "hooks",
            "event_type": "test",
            "level": "",
            "account_id": account,
            "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "message": request.message or DEFAULT_TEST_MESSAGE,
        }
        ids, created = await self.store.enqueue(
            [NewDelivery(account, request.endpoint_id, body["id"], encode_event(body))]
        )
        delivery_id = ids[(body["id"], request.endpoint_id)]
        for delivery in created:
            self.deliverer.announce(delivery.as_row())
        await self.dispatcher.run_now(delivery_id, request.endpoint_id)
        delivery, attempts = await self.store.get(account, delivery_id)
        return deliveries_pb2.SendTestMessageResponse(delivery=delivery_to_proto(delivery, attempts))
