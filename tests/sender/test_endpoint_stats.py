"""BatchGetEndpointStats: an account's endpoints' health after known successes and failures (last
attempt, the last 24 hours' attempts, failing since, pending), one answer per id in the request's
order; another account's or an unknown endpoint gets zeros; the bounds of the request; and on
SQLite every statement it runs searches an index (never a scan of a table)."""

from __future__ import annotations

from datetime import timedelta

import grpc
from google.rpc import code_pb2
from sqlalchemy import event, update

from hooks.registry.v1 import endpoints_pb2
from hooks.sender.v1 import deliveries_pb2
from services.common.db import create_engine, utcnow
from services.common.errors import field_violations_of
from services.common.identity import identity_metadata
from services.sender.models import Attempt
from tests.helpers.registry import running_registry
from tests.helpers.sender import (
    Receiver,
    Sender,
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
FAILED = deliveries_pb2.DELIVERY_STATUS_FAILED
PENDING = deliveries_pb2.DELIVERY_STATUS_PENDING


async def stats_of(sender: Sender, account: str, *endpoint_ids: str) -> list[deliveries_pb2.EndpointStats]:
    response = await sender.deliveries.BatchGetEndpointStats(
        deliveries_pb2.BatchGetEndpointStatsRequest(endpoint_ids=endpoint_ids), metadata=identity_metadata(account)
    )
    return list(response.stats)


async def delivered(sender: Sender, account: str, endpoint_id: str, count: int, status: int) -> list[str]:
    responses = await deliver(sender, *[request_for(make_event(account, i), endpoint_id) for i in range(count)])
    assert all(r.status.code == code_pb2.OK for r in responses)
    ids = [r.delivery_ids[0] for r in responses]
    for delivery_id in ids:
        await wait_for_status(sender, account, delivery_id, status)
    return ids


async def test_the_figures_of_successes_failures_and_pending_deliveries(database_url, registry, receiver: Receiver):
    receiver.script["failing"] = answer(500)
    me, other = new_account(), new_account()
    async with running_sender(database_url, registry) as sender:
        healthy = await create_endpoint(sender, me, receiver.url("healthy"))
        failing = await create_endpoint(sender, me, receiver.url("failing"))
        waiting = await create_endpoint(sender, me, receiver.url("waiting"))
        theirs = await create_endpoint(sender, other, receiver.url("theirs"))
        await delivered(sender, me, healthy.id, 3, SUCCEEDED)
        [given_up] = await delivered(sender, me, failing.id, 1, FAILED)  # 4 attempts, each a 500
        await delivered(sender, other, theirs.id, 2, SUCCEEDED)
        await sender.endpoints.PauseEndpoint(
            endpoints_pb2.PauseEndpointRequest(id=waiting.id), metadata=identity_metadata(me)
        )
        held = await deliver(sender, *[request_for(make_event(me), waiting.id) for _ in range(2)])

        async def both_held() -> bool:
            return (await stats_of(sender, me, waiting.id))[0].pending_count == 2

        await eventually(both_held, timeout=15)
        assert all(r.status.code == code_pb2.OK for r in held)

        unknown = "00000000-0000-0000-0000-000000000000"
        answered = await stats_of(sender, me, healthy.id, failing.id, waiting.id, theirs.id, unknown, healthy.id)
        assert [s.endpoint_id for s in answered] == [healthy.id, failing.id, waiting.id, theirs.id, unknown, healthy.id]
        good, bad, paused, not_mine, nobody, again = answered

        starts = []
        for listed in await list_of(sender, me, healthy.id):
            starts += [a.start_time.ToDatetime() for a in (await get(sender, me, listed.id)).attempts]
        last_success = max(starts)
        assert (good.attempts_24h, good.succeeded_attempts_24h, good.pending_count) == (3, 3, 0)
        assert good.last_attempt_succeeded and good.last_http_status == 200
        assert good.last_attempt_time.ToDatetime() == last_success
        assert not good.HasField("failing_since")

        failed = await get(sender, me, given_up)
        assert (bad.attempts_24h, bad.succeeded_attempts_24h, bad.pending_count) == (4, 0, 0)
        assert not bad.last_attempt_succeeded and bad.last_http_status == 500
        assert bad.last_attempt_time == failed.attempts[-1].start_time
        assert bad.HasField("failing_since")
        assert (
            failed.attempts[0].start_time.ToDatetime()
            <= bad.failing_since.ToDatetime()
            <= utcnow().replace(tzinfo=None)
        )

        assert paused.pending_count == 2 and paused.attempts_24h == 0 and not paused.HasField("last_attempt_time")
        # Another account's endpoint and one that does not exist: zeros, the id alone.
        assert not_mine == deliveries_pb2.EndpointStats(endpoint_id=theirs.id)
        assert nobody == deliveries_pb2.EndpointStats(endpoint_id=unknown)
        assert again == good
        [seen_by_owner] = await stats_of(sender, other, theirs.id)
        assert (seen_by_owner.attempts_24h, seen_by_owner.succeeded_attempts_24h) == (2, 2)

        # An attempt older than 24 hours is the last one still, but no longer among the day's.
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    update(Attempt)
                    .where(Attempt.delivery_id == given_up)
                    .values(started_at=utcnow() - timedelta(days=2))
                )
        finally:
            await engine.dispose()
        [old] = await stats_of(sender, me, failing.id)
        assert old.attempts_24h == 0 and old.HasField("last_attempt_time") and old.last_http_status == 500


async def list_of(sender: Sender, account: str, endpoint_id: str) -> list[deliveries_pb2.Delivery]:
    response = await sender.deliveries.ListDeliveries(
        deliveries_pb2.ListDeliveriesRequest(endpoint_id=endpoint_id), metadata=identity_metadata(account)
    )
    return list(response.deliveries)


async def get(sender: Sender, account: str, delivery_id: str) -> deliveries_pb2.Delivery:
    response = await sender.deliveries.GetDelivery(
        deliveries_pb2.GetDeliveryRequest(id=delivery_id), metadata=identity_metadata(account)
    )
    return response.delivery


async def test_the_request_holds_one_to_a_thousand_ids_none_of_them_empty(sender: Sender):
    account = new_account()
    answered = await stats_of(sender, account, *[f"endpoint-{n}" for n in range(1000)])
    assert [s.endpoint_id for s in answered] == [f"endpoint-{n}" for n in range(1000)]
    for ids, field in (
        ([], "endpoint_ids"),
        ([f"endpoint-{n}" for n in range(1001)], "endpoint_ids"),
        (["endpoint-0", ""], "endpoint_ids[1]"),
        (["x" * 65], "endpoint_ids[0]"),
        (["bad\x00id"], "endpoint_ids[0]"),
    ):
        try:
            await stats_of(sender, account, *ids)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert [name for name, _ in field_violations_of(error)] == [field], (ids[:3], error.details())
        else:
            raise AssertionError(f"{ids[:3]} accepted")
    try:
        await sender.deliveries.BatchGetEndpointStats(deliveries_pb2.BatchGetEndpointStatsRequest(endpoint_ids=["x"]))
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    else:
        raise AssertionError("answered without an identity")


async def test_every_statement_searches_an_index(sqlite_url, receiver: Receiver):
    """On SQLite (whose plans do not depend on the tables' sizes) no statement of a call for many
    endpoints scans a table: each finds its rows through an index."""
    account = new_account()
    async with (
        running_registry(sqlite_url, registry_change_poll_seconds=0.05) as (_, registry_port),
        running_sender(sqlite_url, f"127.0.0.1:{registry_port}") as sender,
    ):
        endpoint = await create_endpoint(sender, account, receiver.url("hook"))
        await delivered(sender, account, endpoint.id, 2, SUCCEEDED)
        engine = sender.server.sender.store.engine.sync_engine
        statements: list[tuple[str, object]] = []

        def seen(_connection, _cursor, statement, parameters, _context, _executemany):
            if statement.lstrip().upper().startswith("SELECT"):
                statements.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", seen)
        try:
            await stats_of(sender, account, endpoint.id, *[f"endpoint-{n}" for n in range(300)])
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert len(statements) == 4
        async with sender.server.sender.store.engine.connect() as connection:
            for statement, parameters in statements:
                plan = [
                    row[-1] for row in await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
                ]
                scans = [step for step in plan if step.startswith("SCAN") and "VIRTUAL TABLE" not in step]
                assert not scans, (statement, plan)
                # Each search is by endpoint (a range per endpoint) or by key: none walks an account's rows.
                searches = [step for step in plan if step.startswith("SEARCH")]
                assert all("endpoint_id=" in step or "rowid=" in step for step in searches), (statement, plan)
                assert any("INDEX" in step for step in plan), (statement, plan)
