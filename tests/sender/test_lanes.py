"""Lanes, leases and the breaker: one endpoint's backlog never delays another's, leases are renewed
and fenced (a sender that lost one never writes over the new owner, two senders never double-send),
and an endpoint that fails every attempt trips its breaker and gets probes only."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

from aiohttp import web
from google.rpc import code_pb2

from hooks.registry.v1 import endpoints_pb2
from hooks.sender.v1 import deliveries_pb2
from services.common.db import create_engine, utcnow
from services.common.identity import identity_metadata
from services.sender.lanes import BreakerSettings, CircuitBreaker
from services.sender.models import DeliveryState
from services.sender.store import AttemptResult, DeliveryStore, NewDelivery
from tests.helpers.sender import (
    answer,
    create_endpoint,
    deliver,
    make_event,
    new_account,
    request_for,
    running_sender,
    wait_for_status,
)
from tests.helpers.waiting import eventually

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED


async def test_a_fast_endpoint_is_served_within_seconds_despite_another_accounts_backlog_on_a_slow_one(
    database_url, registry, receiver
):
    """A's endpoint answers after 2 s and has 5,000 deliveries queued; B's 500 all arrive within 5 s
    (before lanes, the last of B's arrived after 460 s: A's rows filled the backlog and the poller
    claimed the oldest due rows, A's)."""

    async def slow(_request, _count):
        await asyncio.sleep(2)  # the endpoint's own answer time
        return web.Response(text="ok")

    receiver.script["a"] = slow
    a, b = new_account(), new_account()
    async with running_sender(database_url, registry) as sender:
        endpoint_a = await create_endpoint(sender, a, receiver.url("a"))
        endpoint_b = await create_endpoint(sender, b, receiver.url("b"))
        responses = await deliver(sender, *[request_for(make_event(a), endpoint_a.id) for _ in range(5000)])
        assert all(r.status.code == code_pb2.OK for r in responses)
        started = time.monotonic()
        responses = await deliver(sender, *[request_for(make_event(b), endpoint_b.id) for _ in range(500)])
        assert all(r.status.code == code_pb2.OK for r in responses)
        await eventually(lambda: len(receiver.on("b")) >= 500, timeout=5)
        assert time.monotonic() - started < 5
        assert sorted(r.headers["webhook-id"] for r in receiver.on("b")) == sorted(r.delivery_ids[0] for r in responses)


async def test_a_sender_that_lost_its_lease_cannot_overwrite_the_new_owners_outcome(database_url, registry):
    """The lease ran out under sender X (e.g. it stalled) and Y claimed the delivery: X's late outcome
    is not written (fenced on owner and generation); Y's is."""
    engine = create_engine(database_url)
    try:
        async with running_sender(database_url, registry):  # migrates the database
            pass
        x = DeliveryStore(engine, "sender-x", lease_seconds=0.2)
        y = DeliveryStore(engine, "sender-y", lease_seconds=30)
        account = new_account()
        item = NewDelivery(account, "ep-fenced", "inventory", f"evt-{time.monotonic_ns()}", '{"a":1}')
        _ids, [held_by_x] = await x.enqueue([item])
        await eventually(lambda: utcnow() > held_by_x.claimed_until, timeout=5)
        [held_by_y] = await y.claim_due(per_endpoint=10, limit=10)
        assert held_by_y.id == held_by_x.id and held_by_y.lease_generation > held_by_x.lease_generation

        def result(generation: int, succeeded: bool) -> AttemptResult:
            return AttemptResult(
                held_by_x.id, "ep-fenced", 1, utcnow(), 0.01, 200 if succeeded else 500, "", "", succeeded,
                DeliveryState.SUCCEEDED if succeeded else DeliveryState.PENDING,
                None if succeeded else utcnow() + timedelta(hours=1), generation,
            )  # fmt: skip

        await x.record_attempts([result(held_by_x.lease_generation, succeeded=False)])
        stored, _attempts = await y.get(account, held_by_x.id)
        assert stored.claimed_by == "sender-y" and stored.status == "PENDING" and stored.attempt_count == 0
        assert await x.renew([held_by_x]) == [held_by_x]  # X learns it lost the lease
        await y.record_attempts([result(held_by_y.lease_generation, succeeded=True)])
        stored, _attempts = await y.get(account, held_by_x.id)
        assert stored.status == "SUCCEEDED" and stored.claimed_by == ""
    finally:
        await engine.dispose()


async def test_a_batch_with_a_failure_then_a_success_of_one_endpoint_is_recorded(database_url, registry):
    """The attempt recorder batches what finished together: an endpoint's failure, then its success,
    in one batch ends its streak, and both attempts are written (the batch used to raise KeyError and
    be written again and again, its deliveries never moving on)."""
    engine = create_engine(database_url)
    try:
        async with running_sender(database_url, registry):  # migrates the database
            pass
        store = DeliveryStore(engine, "sender-batch", lease_seconds=30)
        account = new_account()
        items = [NewDelivery(account, "ep-mixed", "inventory", f"evt-{time.monotonic_ns()}-{n}", "{}") for n in (1, 2)]
        _ids, held = await store.enqueue(items)
        failed, succeeded = (
            AttemptResult(
                delivery.id, "ep-mixed", 1, utcnow(), 0.01, status, "", "", status == 200,
                DeliveryState.SUCCEEDED if status == 200 else DeliveryState.FAILED, None,
                delivery.lease_generation, account_id=account,
            )
            for delivery, status in zip(held, (410, 200), strict=True)
        )  # fmt: skip
        assert await store.record_attempts([failed, succeeded]) == [None, None]
        for delivery, status in zip(held, ("FAILED", "SUCCEEDED"), strict=True):
            stored, attempts = await store.get(account, delivery.id)
            assert (stored.status, stored.attempt_count, len(attempts)) == (status, 1, 1)
    finally:
        await engine.dispose()


async def test_two_senders_with_a_one_second_lease_never_send_a_delivery_twice(database_url, registry, receiver):
    """Two senders on one database, lease 1 s, one attempt at a time per endpoint, a receiver taking
    0.4 s: the deliveries queued behind the first wait longer than the lease, yet the lease is
    renewed while held, so the other sender never takes one over (before: 5-8 of 10 sent twice)."""
    in_flight: dict[str, int] = {}
    overlaps: list[str] = []

    async def slow(request, _count):
        webhook_id = request.headers["webhook-id"]
        in_flight[webhook_id] = in_flight.get(webhook_id, 0) + 1
        if in_flight[webhook_id] > 1:
            overlaps.append(webhook_id)
        await asyncio.sleep(0.4)
        in_flight[webhook_id] -= 1
        return web.Response(text="ok")

    receiver.script["slow"] = slow
    account = new_account()
    settings = dict(sender_lease_seconds=1.0, sender_per_endpoint_concurrency=1)
    async with (
        running_sender(database_url, registry, **settings) as first,
        running_sender(database_url, registry, **settings) as second,
    ):
        endpoint = await create_endpoint(first, account, receiver.url("slow"))
        responses = await deliver(first, *[request_for(make_event(account), endpoint.id) for _ in range(10)])
        for response in responses:
            await wait_for_status(second, account, response.delivery_ids[0], SUCCEEDED, timeout=20)
    received = [r.headers["webhook-id"] for r in receiver.on("slow")]
    assert sorted(received) == sorted(r.delivery_ids[0] for r in responses)  # each once
    assert overlaps == []


async def test_an_endpoint_failing_every_attempt_trips_its_breaker_and_gets_probes_only(
    database_url, registry, receiver
):
    """After 3 failures in a row the lane pauses: one probe after 0.5 s, the next 1 s after that
    (growing), nothing in between; once the endpoint answers again, the probe closes the breaker and
    the deliveries held back all go out."""
    healthy = asyncio.Event()

    async def failing(_request, _count):
        return web.Response(text="ok") if healthy.is_set() else web.Response(status=500, text="down")

    receiver.script["down"] = failing
    account = new_account()
    async with running_sender(
        database_url,
        registry,
        sender_per_endpoint_concurrency=1,
        sender_breaker_failures=3,
        sender_breaker_probe_seconds=0.5,
        sender_retry_schedule="1h",
    ) as sender:
        endpoint = await create_endpoint(sender, account, receiver.url("down"))
        responses = await deliver(sender, *[request_for(make_event(account), endpoint.id) for _ in range(20)])
        await eventually(lambda: len(receiver.on("down")) >= 5, timeout=10)
        times = [r.at for r in receiver.on("down")]
        assert times[3] - times[2] >= 0.45  # the first probe, after the trip
        assert times[4] - times[3] >= 0.95  # the next, twice as long after
        healthy.set()
        # Every delivery but the five that failed (retried in an hour) goes out once the probe succeeds.
        await eventually(lambda: len(receiver.on("down")) >= 5 + 15, timeout=10)
        later = [r.headers["webhook-id"] for r in receiver.on("down")[5:]]
        assert len(later) == len(set(later)) == 15
        assert set(later) <= {r.delivery_ids[0] for r in responses}


async def test_a_rate_limit_of_ten_a_second_holds_within_ten_percent(database_url, registry, receiver):
    """An endpoint limited to 10 requests a second gets them at 10 a second (after the first
    second's worth), however many are queued."""
    account = new_account()
    async with running_sender(database_url, registry) as sender:
        endpoint = await create_endpoint(
            sender,
            account,
            receiver.url("limited"),
            rate_limit=endpoints_pb2.RateLimit(requests=10, period=endpoints_pb2.RATE_LIMIT_PERIOD_SECOND),
        )
        assert endpoint.rate_limit.requests == 10
        await deliver(sender, *[request_for(make_event(account), endpoint.id) for _ in range(60)])
        await eventually(lambda: len(receiver.on("limited")) >= 60, timeout=20)
    times = [r.at for r in receiver.on("limited")]
    rate = (len(times) - 1 - 20) / (times[-1] - times[20])
    assert 9.0 <= rate <= 11.0, rate


async def test_an_ordered_endpoint_receives_in_the_order_produced_after_a_failure_and_a_retry(
    database_url, registry, receiver
):
    """DELIVERY_ORDER_ORDERED: 1,000 deliveries, one in flight, in acceptance order; the 50th fails
    once, and nothing after it goes before its retry succeeds (more than a lane holds, so some come
    from the database)."""
    failed = []

    async def fail_the_fiftieth_once(request, count):
        body = await request.json()
        if body["message"] == 49 and not failed:
            failed.append(body["message"])
            return web.Response(status=500, text="once")
        return web.Response(text="ok")

    receiver.script["ordered"] = fail_the_fiftieth_once
    account = new_account()
    async with running_sender(database_url, registry, sender_lane_backlog=64) as sender:
        endpoint = await create_endpoint(
            sender, account, receiver.url("ordered"), order=endpoints_pb2.DELIVERY_ORDER_ORDERED
        )
        await deliver(sender, *[request_for(make_event(account, message=n), endpoint.id) for n in range(1000)])
        await eventually(lambda: len(receiver.on("ordered")) >= 1001, timeout=60)
    received = [json.loads(r.body)["message"] for r in receiver.on("ordered")]
    assert failed == [49]
    assert received == list(range(50)) + list(range(49, 1000))  # the 50th twice, nothing overtaking it


async def test_a_test_message_to_an_ordered_endpoint_held_back_by_a_retry_is_answered_at_once(
    database_url, registry, receiver
):
    """SendTestMessage waits for its attempt, but not behind an ordered endpoint's failed head whose
    retry is an hour away: it answers PENDING at once (it used to wait out the caller's deadline)."""
    receiver.script["held"] = answer(500)
    account = new_account()
    async with running_sender(database_url, registry, sender_retry_schedule="1h") as sender:
        endpoint = await create_endpoint(
            sender, account, receiver.url("held"), order=endpoints_pb2.DELIVERY_ORDER_ORDERED
        )
        await deliver(sender, request_for(make_event(account), endpoint.id))
        await eventually(lambda: len(receiver.on("held")) >= 1, timeout=10, message="the first attempt")
        tested = await asyncio.wait_for(
            sender.deliveries.SendTestMessage(
                deliveries_pb2.SendTestMessageRequest(endpoint_id=endpoint.id), metadata=identity_metadata(account)
            ),
            5,
        )
    assert tested.delivery.status == deliveries_pb2.DELIVERY_STATUS_PENDING and tested.delivery.attempt_count == 0
    assert len(receiver.on("held")) == 1  # nothing overtook the failed head


def test_the_breaker_opens_on_the_failure_ratio_of_its_window_only():
    """Half the attempts of the last 30 s failing (never 10 in a row) opens the breaker once 20 are
    counted; failures older than the window do not count, however many there were."""
    breaker = CircuitBreaker(BreakerSettings())
    for n in range(19):
        breaker.record(succeeded=n % 2 == 1, now=1000.0 + n * 0.1)
    assert not breaker.is_open
    breaker.record(succeeded=True, now=1002.0)  # 20 attempts, 10 of them failed
    assert breaker.is_open and not breaker.allows(1002.1)

    old = CircuitBreaker(BreakerSettings())
    for n in range(9):  # long ago
        old.record(succeeded=False, now=1000.0 + n)
    for n in range(40):  # now, 1 in 5 failing: the old failures have left the window
        old.record(succeeded=n % 5 != 4, now=1100.0 + n * 0.01)
    assert not old.is_open
