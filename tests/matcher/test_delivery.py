"""Hand-off to the senders: a message's offset is committed only once a sender acknowledged it; a
message that is not acknowledged (sender down, stream broken, non-OK answer) is sent again until it is."""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest_asyncio
from google.rpc import code_pb2, status_pb2

from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
from tests.helpers.matcher import group_of, message, running_matcher
from tests.helpers.waiting import eventually

NOBODY = "999999"  # an account without filters: its messages have no route
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")


async def test_offset_is_not_committed_past_a_message_not_yet_acknowledged(
    broker, registry, sender_unstarted, receiver
):
    endpoint = await registry.endpoint(receiver.url("slow"))
    await registry.filter([endpoint.id])
    placed = await broker.aproduce(
        [
            message(account_id=NOBODY, message={"text": "no-route-1"}),
            message(message={"text": "routed"}),
            message(account_id=NOBODY, message={"text": "no-route-2"}),
        ],
        partition=0,
    )
    routed_offset = placed[1][1]

    # The sender is not running: the routed message cannot be acknowledged.
    async with running_matcher(broker, registry.target, sender_unstarted.target, shutdown_grace_seconds=0.5) as matcher:
        consumer = matcher.matcher.consumer
        group = group_of(matcher)
        await eventually(lambda: consumer.counters.unrouted == 2, message="both unrouted messages done")
        # Done up to the routed message, and no further although the one after it is done too.
        await eventually(lambda: broker.committed(group)[0] == routed_offset, message="committed up to the routed one")
        await asyncio.sleep(1.5)  # more than the auto-commit interval
        assert (await broker.acommitted(group))[0] == routed_offset
        assert consumer.in_flight == 1
    # Stopped (SIGTERM's path) within its grace with the message still not acknowledged: not committed past.
    assert (await broker.acommitted(group))[0] == routed_offset
    assert receiver.on("slow") == []

    # A new matcher of the group reads it again and, once a sender is up, delivers it.
    await sender_unstarted.start()
    async with running_matcher(broker, registry.target, sender_unstarted.target, matcher_group_id=group) as again:
        await eventually(lambda: "routed" in receiver.texts("slow"), message="delivered once a sender is up")
        await eventually(lambda: broker.committed(group)[0] == placed[-1][1] + 1, message="committed to the end")
        assert again.matcher.consumer.counters.handed_off == 1
        assert again.matcher.consumer.counters.unrouted == 1  # only what was after the committed offset


class FlakySender(deliveries_pb2_grpc.DeliveryServiceServicer):
    """A fake sender (the real one cannot be made to refuse): for each event, the first attempt is
    answered UNAVAILABLE, the second breaks the stream, the third is acknowledged. This one has only
    Deliver, as a sender older than DeliverBatch."""

    def __init__(self) -> None:
        self.requests: list[deliveries_pb2.DeliverRequest] = []
        self.acknowledged: set[str] = set()
        self.batch_sizes: list[int] = []  # requests per DeliverBatch message
        self.hold = asyncio.Event()  # the third attempt is answered once it is set
        self.hold.set()
        self._tasks: set[asyncio.Task] = set()

    async def Deliver(self, request_iterator, context):
        async for answer in self._answer(request_iterator, context):
            yield answer

    async def _answer(self, request_iterator, context):
        answers: asyncio.Queue = asyncio.Queue()

        async def acknowledge_when_allowed(request) -> None:
            await self.hold.wait()
            self.acknowledged.add(request.event.id)
            answers.put_nowait(
                deliveries_pb2.DeliverResponse(
                    request_id=request.request_id, delivery_ids=["d"] * len(request.endpoint_ids)
                )
            )

        async def read() -> None:
            async for request in request_iterator:
                self.requests.append(request)
                attempt = sum(1 for r in self.requests if r.event.id == request.event.id)
                if attempt == 1:
                    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message="busy")
                    answers.put_nowait(deliveries_pb2.DeliverResponse(request_id=request.request_id, status=status))
                elif attempt == 2:
                    answers.put_nowait(None)  # break the stream
                else:
                    self._tasks.add(asyncio.create_task(acknowledge_when_allowed(request)))

        reader = asyncio.create_task(read())
        try:
            while True:
                answer = await answers.get()
                if answer is None:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "replica going away")
                yield answer
        finally:
            reader.cancel()


class FlakyBatchSender(FlakySender):
    """The same fake with DeliverBatch too: each request of a batch is answered on its own."""

    async def DeliverBatch(self, request_iterator, context):
        async def requests():
            async for batch in request_iterator:
                self.batch_sizes.append(len(batch.requests))
                for request in batch.requests:
                    yield request

        async for answer in self._answer(requests(), context):
            yield deliveries_pb2.DeliverBatchResponse(responses=[answer])


async def serve(fake: deliveries_pb2_grpc.DeliveryServiceServicer):
    server = grpc.aio.server()
    deliveries_pb2_grpc.add_DeliveryServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest_asyncio.fixture(params=["batch", "deliver-only"])
async def flaky_sender(request):
    fake = FlakyBatchSender() if request.param == "batch" else FlakySender()
    server, target = await serve(fake)
    try:
        yield fake, target
    finally:
        await server.stop(0)


async def test_refused_or_broken_hand_offs_are_sent_again_until_acknowledged(broker, registry, flaky_sender):
    fake, target = flaky_sender
    first = await registry.endpoint("http://127.0.0.1:9/one")
    second = await registry.endpoint("http://127.0.0.1:9/two")
    await registry.filter([first.id, second.id])
    fake.hold.clear()
    placed = await broker.aproduce([message(id="event-a"), message(id="event-b")], partition=0)

    async with running_matcher(broker, registry.target, target, matcher_sender_streams=3) as matcher:
        group = group_of(matcher)
        await eventually(lambda: len(fake.requests) >= 6, message="three attempts of each event")
        # Not acknowledged yet: nothing committed.
        await asyncio.sleep(1.5)
        assert await broker.acommitted(group) == [-1001, -1001]
        fake.hold.set()
        await eventually(lambda: fake.acknowledged == {"event-a", "event-b"})
        await eventually(lambda: broker.committed(group)[0] == placed[-1][1] + 1, message="committed once acknowledged")
        assert matcher.matcher.consumer.counters.handed_off == 2

    for event_id in ("event-a", "event-b"):
        attempts = [r for r in fake.requests if r.event.id == event_id]
        assert len(attempts) >= 3
        # Each re-send is a request of its own (gRPC may also replay one on a broken stream, as is).
        assert len({r.request_id for r in attempts}) >= 2
        assert all(
            sorted(r.endpoint_ids) == sorted([first.id, second.id]) for r in attempts
        )  # one request, all endpoints
        assert len({r.traceparent for r in attempts}) == 1  # one trace per message
        assert TRACEPARENT.match(attempts[0].traceparent)
    traces = {r.traceparent for r in fake.requests}
    assert len(traces) == 2  # a new trace for each message
    if isinstance(fake, FlakyBatchSender):
        assert sum(fake.batch_sizes) == len(fake.requests)  # every request went in a DeliverBatch
    else:
        assert fake.batch_sizes == []  # an older sender: the matcher fell back to Deliver


class AcknowledgingSender(deliveries_pb2_grpc.DeliveryServiceServicer):
    """A fake sender that acknowledges every request of every DeliverBatch message at once, recording
    how the requests were grouped."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.event_ids: list[str] = []

    async def DeliverBatch(self, request_iterator, context):
        async for batch in request_iterator:
            self.batch_sizes.append(len(batch.requests))
            self.event_ids.extend(r.event.id for r in batch.requests)
            yield deliveries_pb2.DeliverBatchResponse(
                responses=[
                    deliveries_pb2.DeliverResponse(request_id=r.request_id, delivery_ids=["d"] * len(r.endpoint_ids))
                    for r in batch.requests
                ]
            )


async def test_a_burst_goes_to_the_sender_in_batches_each_request_acknowledged(broker, registry):
    fake = AcknowledgingSender()
    server, target = await serve(fake)
    try:
        endpoint = await registry.endpoint("http://127.0.0.1:9/burst")
        await registry.filter([endpoint.id])
        ids = [f"burst-{i}" for i in range(120)]
        placed = await broker.aproduce([message(id=i) for i in ids], partition=0)
        async with running_matcher(broker, registry.target, target) as matcher:
            await eventually(
                lambda: broker.committed(group_of(matcher))[0] == placed[-1][1] + 1, message="all committed"
            )
            assert matcher.matcher.consumer.counters.handed_off == len(ids)
        assert sorted(fake.event_ids) == sorted(ids)  # each sent once: each acknowledged on its own
        assert max(fake.batch_sizes) > 1 and len(fake.batch_sizes) < len(ids)
    finally:
        await server.stop(0)


async def test_two_matchers_share_the_partitions_and_every_message_is_delivered(broker, registry, sender, receiver):
    """A second matcher of the group takes partitions over (a rebalance); nothing is lost and the
    group's offsets reach the end."""
    endpoint = await registry.endpoint(receiver.url("shared"))
    await registry.filter([endpoint.id])
    before = [f"before-{i}" for i in range(20)]
    placed = await broker.aproduce([message(message={"text": t}) for t in before[:10]], partition=0)
    placed += await broker.aproduce([message(message={"text": t}) for t in before[10:]], partition=1)

    async with running_matcher(broker, registry.target, sender.target) as first:
        group = group_of(first)
        await eventually(lambda: set(before) <= set(receiver.texts("shared")), message="the first matcher delivers")
        async with running_matcher(broker, registry.target, sender.target, matcher_group_id=group) as second:
            await eventually(
                lambda: len(first.matcher.consumer.assignment) == 1 and len(second.matcher.consumer.assignment) == 1,
                message="one partition each",
            )
            after = [f"after-{i}" for i in range(20)]
            tail = await broker.aproduce([message(message={"text": t}) for t in after[:10]], partition=0)
            tail += await broker.aproduce([message(message={"text": t}) for t in after[10:]], partition=1)
            await eventually(lambda: set(after) <= set(receiver.texts("shared")), message="both matchers deliver")
            assert first.matcher.consumer.counters.handed_off > 0 and second.matcher.consumer.counters.handed_off > 0
            ends = [tail[9][1] + 1, tail[19][1] + 1]
            await eventually(lambda: broker.committed(group) == ends, message=f"committed offsets reach {ends}")


async def test_in_flight_messages_are_bounded_and_consumption_resumes(broker, registry, sender_unstarted, receiver):
    """At the in-flight limit the matcher stops fetching (partitions paused), and resumes as they finish."""
    endpoint = await registry.endpoint(receiver.url("bounded"))
    await registry.filter([endpoint.id])
    texts = [f"b{i}" for i in range(24)]
    placed = await broker.aproduce([message(message={"text": t}) for t in texts], partition=0)

    async with running_matcher(broker, registry.target, sender_unstarted.target, matcher_max_in_flight=8) as matcher:
        consumer = matcher.matcher.consumer
        await eventually(lambda: consumer.in_flight == 8, message="the limit reached")
        highest = 0
        for _ in range(20):  # while nothing can finish, no more is taken
            highest = max(highest, consumer.in_flight)
            await asyncio.sleep(0.05)
        assert highest <= 9  # the limit, plus at most one read while pausing

        await sender_unstarted.start()
        await eventually(lambda: set(texts) <= set(receiver.texts("bounded")), message="all delivered after resuming")
        await eventually(lambda: broker.committed(group_of(matcher))[0] == placed[-1][1] + 1)
