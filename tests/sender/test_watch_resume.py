"""WatchDeliveries resumes (services/sender/watch_cursor.py): every change carries a resume token; a
watch given one first gets each delivery changed since, once, as it now stands, then live changes;
a token that is not one, or older than the retention, is INVALID_ARGUMENT naming `resume_token`.
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import grpc

from hooks.sender.v1 import deliveries_pb2
from services.common.errors import field_violations_of
from services.common.identity import identity_metadata
from services.sender import watch_cursor
from tests.helpers.sender import create_endpoint, deliver, make_event, new_account, request_for, wait_for_status
from tests.helpers.waiting import eventually

PENDING = deliveries_pb2.DELIVERY_STATUS_PENDING
SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED


@contextlib.asynccontextmanager
async def watching(sender, account: str, **request):
    """A WatchDeliveries stream taken by the sender, and the list its responses are appended to."""
    call = sender.deliveries.WatchDeliveries(
        deliveries_pb2.WatchDeliveriesRequest(**request), metadata=identity_metadata(account)
    )
    await call.initial_metadata()
    seen: list[deliveries_pb2.WatchDeliveriesResponse] = []

    async def collect() -> None:
        async for response in call:
            seen.append(response)

    collector = asyncio.create_task(collect())
    try:
        yield seen
    finally:
        call.cancel()
        await asyncio.gather(collector, return_exceptions=True)


async def _succeeded(sender, account: str, endpoint_id: str) -> str:
    [response] = await deliver(sender, request_for(make_event(account), endpoint_id))
    await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
    return response.delivery_ids[0]


def _done(seen: list[deliveries_pb2.WatchDeliveriesResponse], delivery_id: str) -> bool:
    return any(r.delivery.id == delivery_id and r.delivery.status == SUCCEEDED for r in seen)


async def test_a_resumed_watch_gets_exactly_what_changed_since_then_live_changes(sender, receiver):
    account, other_account = new_account(), new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("hook"))
    foreign = await create_endpoint(sender, other_account, receiver.url("foreign"))

    async with watching(sender, account) as seen:
        first = await _succeeded(sender, account, endpoint.id)
        await eventually(lambda: _done(seen, first))
    assert [(r.delivery.id, r.delivery.status) for r in seen] == [(first, PENDING), (first, SUCCEEDED)]
    assert all(r.resume_token for r in seen) and len({r.resume_token for r in seen}) == 2
    last = seen[-1].resume_token

    # Missed while nobody watched: two deliveries of the account (each queued, then delivered: two
    # changes, folded into one on resume), and one of another account.
    missed = [await _succeeded(sender, account, endpoint.id) for _ in range(2)]
    await _succeeded(sender, other_account, foreign.id)

    async with watching(sender, account, resume_token=last) as resumed:
        await eventually(lambda: len(resumed) == 2)
        live = await _succeeded(sender, account, endpoint.id)
        await eventually(lambda: _done(resumed, live))
    # The missed ones first, once each, as they stand, in the order they changed; then live.
    assert [(r.delivery.id, r.delivery.status) for r in resumed] == [
        (missed[0], SUCCEEDED),
        (missed[1], SUCCEEDED),
        (live, PENDING),
        (live, SUCCEEDED),
    ]
    assert resumed[0].delivery.attempt_count == 1

    # Resuming from within the resumed stream goes on from there: what changed since (the live
    # one, now delivered), after what changed within RESUME_OVERLAP before the token (at least
    # once: sent again, in case it committed after the token's change), never the token's own.
    token = resumed[1]
    async with watching(sender, account, resume_token=token.resume_token) as again:
        await eventually(lambda: _done(again, live))
    assert [(r.delivery.id, r.delivery.status) for r in again][-1:] == [(live, SUCCEEDED)]
    cursor_time = token.delivery.update_time.ToDatetime(tzinfo=UTC)
    for repeated in again[:-1]:
        assert repeated.delivery.id not in (token.delivery.id, live)
        changed = repeated.delivery.update_time.ToDatetime(tzinfo=UTC)
        assert cursor_time - watch_cursor.RESUME_OVERLAP <= changed <= cursor_time


async def test_a_resumed_watch_of_one_endpoint_gets_that_endpoints_changes(sender, receiver):
    account = new_account()
    watched = await create_endpoint(sender, account, receiver.url("watched"))
    other = await create_endpoint(sender, account, receiver.url("other"))
    async with watching(sender, account, endpoint_id=watched.id) as seen:
        first = await _succeeded(sender, account, watched.id)
        await eventually(lambda: _done(seen, first))
    await _succeeded(sender, account, other.id)
    missed = await _succeeded(sender, account, watched.id)
    async with watching(sender, account, endpoint_id=watched.id, resume_token=seen[-1].resume_token) as resumed:
        await eventually(lambda: _done(resumed, missed))
        assert [r.delivery.id for r in resumed] == [missed]


async def test_a_token_that_is_not_one_or_too_old_is_invalid_naming_it(sender, receiver):
    account = new_account()
    stale = deliveries_pb2.Delivery(id="00000000-0000-0000-0000-000000000000")
    stale.update_time.FromDatetime(datetime.now(UTC) - timedelta(days=31))  # the default retention is 30 days
    for token, says in (
        ("garbage", "is not a resume token"),
        ("d2hhdGV2ZXI", "is not a resume token"),  # base64 of something else
        ("x" * 1000, "is not a resume token"),
        (watch_cursor.token_of(stale), "older than this sender keeps"),
    ):
        call = sender.deliveries.WatchDeliveries(
            deliveries_pb2.WatchDeliveriesRequest(resume_token=token), metadata=identity_metadata(account)
        )
        try:
            async for _ in call:
                raise AssertionError(f"{token!r} streamed")
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, token
            [(field, description)] = field_violations_of(error)
            assert field == "resume_token" and says in description, (token, description)
        else:
            raise AssertionError(f"{token!r} was accepted")


async def test_a_delivery_that_changes_after_the_catch_up_read_it_comes_again_live(sender, receiver):
    """Caught up with a delivery still in flight (its receiver holds the request), the watcher then
    gets its later change live: the catch-up's state does not hide newer ones."""
    from aiohttp import web

    account = new_account()
    released = asyncio.Event()

    async def held(_request, _count):
        await released.wait()
        return web.Response(text="ok")

    receiver.script["held"] = held
    endpoint = await create_endpoint(sender, account, receiver.url("held"))
    quick = await create_endpoint(sender, account, receiver.url("quick"))
    async with watching(sender, account) as seen:
        first = await _succeeded(sender, account, quick.id)
        await eventually(lambda: _done(seen, first))
    [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
    in_flight = response.delivery_ids[0]
    await eventually(lambda: receiver.on("held"))  # sent, not answered: still PENDING

    async with watching(sender, account, resume_token=seen[-1].resume_token) as resumed:
        await eventually(lambda: resumed)
        released.set()
        await eventually(lambda: _done(resumed, in_flight))
    assert [(r.delivery.id, r.delivery.status) for r in resumed] == [(in_flight, PENDING), (in_flight, SUCCEEDED)]
    assert resumed[1].delivery.attempt_count == 1
