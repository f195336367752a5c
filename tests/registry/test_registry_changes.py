"""The change stream: a heartbeat first, then every committed change, across replicas; and the
change log is pruned without followers silently missing changes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
from google.protobuf import field_mask_pb2
from sqlalchemy import update

from hooks.registry.v1 import endpoints_pb2 as ep_pb
from hooks.registry.v1 import filters_pb2 as f_pb
from hooks.registry.v1 import routing_pb2 as pb
from services.common.channels import channel
from services.common.db import utcnow
from services.common.identity import identity_metadata
from services.registry.models import Change
from tests.helpers.registry import Registry, expect_error, running_registry

ME = identity_metadata("acct-1")
DEADLINE = 20.0


class Watcher:
    """Reads a WatchChanges stream in the background."""

    def __init__(self, stub, after_sequence: int = 0):
        self.call = stub.WatchChanges(pb.WatchChangesRequest(after_sequence=after_sequence))
        self.messages: list[pb.WatchChangesResponse] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self):
        async for message in self.call:
            self.messages.append(message)

    async def wait_for(self, predicate, what: str):
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while asyncio.get_running_loop().time() < deadline:
            if self.task.done() and self.task.exception():
                raise self.task.exception()
            found = [m for m in self.messages if predicate(m)]
            if found:
                return found[0]
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {what} within {DEADLINE}s; got {self.messages}")

    def changes(self):
        return [m for m in self.messages if not m.heartbeat]

    def close(self):
        self.call.cancel()
        self.task.cancel()


async def test_stream_sends_heartbeat_then_changes(registry):
    baseline = Watcher(registry.routing)
    heartbeat = await baseline.wait_for(lambda m: m.heartbeat, "heartbeat")
    assert heartbeat.sequence >= 1  # the built-in application's registration

    endpoint = await registry.endpoint("acct-1", "ops")
    flt = await registry.filter("acct-1", [endpoint.id])
    await registry.register("policies", "Policies", [("triggered", [])])
    await registry.endpoints.UpdateEndpoint(
        ep_pb.UpdateEndpointRequest(
            endpoint=ep_pb.Endpoint(id=endpoint.id, description="x"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        metadata=ME,
    )
    await registry.routing.DisableEndpoint(pb.DisableEndpointRequest(endpoint_id=endpoint.id, reason="gone"))
    await registry.endpoints.DeleteEndpoint(ep_pb.DeleteEndpointRequest(id=endpoint.id), metadata=ME)
    await registry.filters.DeleteFilter(f_pb.DeleteFilterRequest(id=flt.id), metadata=ME)

    await baseline.wait_for(lambda m: m.kind == pb.RESOURCE_KIND_FILTER and len(baseline.changes()) >= 8, "all changes")
    changes = baseline.changes()
    assert [(c.kind, c.resource_id, c.account_id) for c in changes] == [
        (pb.RESOURCE_KIND_ENDPOINT, endpoint.id, "acct-1"),
        (pb.RESOURCE_KIND_FILTER, flt.id, "acct-1"),
        (pb.RESOURCE_KIND_APPLICATION, "policies", ""),
        (pb.RESOURCE_KIND_ENDPOINT, endpoint.id, "acct-1"),  # update
        (pb.RESOURCE_KIND_ENDPOINT, endpoint.id, "acct-1"),  # disable
        (pb.RESOURCE_KIND_ENDPOINT, endpoint.id, "acct-1"),  # delete
        (pb.RESOURCE_KIND_FILTER, flt.id, "acct-1"),  # lost its endpoint
        (pb.RESOURCE_KIND_FILTER, flt.id, "acct-1"),  # deleted
    ]
    sequences = [c.sequence for c in changes]
    assert sequences == sorted(sequences) and sequences[0] > heartbeat.sequence
    # Failed calls and no-op registrations log nothing.
    await expect_error(
        registry.routing.DisableEndpoint(pb.DisableEndpointRequest(endpoint_id="nope", reason="x")),
        grpc.StatusCode.NOT_FOUND,
    )
    await registry.register("policies", "Policies", [("triggered", [])])

    # Resuming after a sequence replays what followed it.
    resumed = Watcher(registry.routing, after_sequence=sequences[4])
    await resumed.wait_for(lambda m: m.sequence == sequences[-1], "replayed changes")
    assert resumed.messages[0].heartbeat and resumed.messages[0].sequence == sequences[4]
    assert [m.sequence for m in resumed.changes()] == sequences[5:]
    marker = await registry.endpoint("acct-1", "marker")
    await baseline.wait_for(lambda m: m.resource_id == marker.id, "marker")
    assert [c.sequence for c in baseline.changes()][:-1] == sequences  # nothing else in between
    baseline.close()
    resumed.close()
    await expect_error(
        registry.routing.WatchChanges(pb.WatchChangesRequest(after_sequence=-1)).read(),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_pruning_keeps_the_log_bounded_and_tells_late_followers(registry):
    endpoint = await registry.endpoint("acct-1", "ops")
    internals = registry.server.registry
    await registry.endpoint("acct-1", "second")
    # Age every change past the retention, then prune.
    async with internals.database.write() as unit:
        await unit.session.execute(update(Change).values(create_time=utcnow() - timedelta(days=2)))
    pruned = await internals.follower.prune()
    assert pruned >= 3
    current = await internals.follower.current_sequence()
    assert current > 0  # the sequence survives an empty log
    late = registry.routing.WatchChanges(pb.WatchChangesRequest(after_sequence=1))
    error = await expect_error(late.read(), grpc.StatusCode.OUT_OF_RANGE)
    assert "after_sequence=0" in error.details()
    fresh = Watcher(registry.routing)
    heartbeat = await fresh.wait_for(lambda m: m.heartbeat, "heartbeat")
    assert heartbeat.sequence == current
    await registry.endpoints.DeleteEndpoint(ep_pb.DeleteEndpointRequest(id=endpoint.id), metadata=ME)
    change = await fresh.wait_for(lambda m: not m.heartbeat, "change after pruning")
    assert change.sequence > current
    fresh.close()


async def two_replicas_see_each_others_changes(database_url, poll_seconds):
    async with running_registry(database_url, registry_change_poll_seconds=poll_seconds) as (server_a, port_a):
        async with running_registry(database_url, registry_change_poll_seconds=poll_seconds) as (server_b, port_b):
            async with channel(f"127.0.0.1:{port_a}") as ch_a, channel(f"127.0.0.1:{port_b}") as ch_b:
                a, b = Registry(port_a, server_a, ch_a), Registry(port_b, server_b, ch_b)
                watcher = Watcher(b.routing)
                await watcher.wait_for(lambda m: m.heartbeat, "heartbeat")
                started = asyncio.get_running_loop().time()
                endpoint = await a.endpoint("acct-1", "ops")
                change = await watcher.wait_for(lambda m: m.resource_id == endpoint.id, "A's change on B")
                latency = asyncio.get_running_loop().time() - started
                assert change.kind == pb.RESOURCE_KIND_ENDPOINT and change.account_id == "acct-1"

                # B's route cache drops what A changed.
                flt = await a.filter("acct-1", [endpoint.id])
                assert (
                    await b.routing.ResolveRoutes(
                        pb.ResolveRoutesRequest(account_id="acct-1", application="hooks", event_type="test")
                    )
                ).routes
                await a.routing.DisableEndpoint(pb.DisableEndpointRequest(endpoint_id=endpoint.id, reason="gone"))
                await watcher.wait_for(
                    lambda m: m.kind == pb.RESOURCE_KIND_ENDPOINT and m.sequence > change.sequence + 1, "disable on B"
                )
                deadline = asyncio.get_running_loop().time() + DEADLINE
                while asyncio.get_running_loop().time() < deadline:
                    routes = await b.routing.ResolveRoutes(
                        pb.ResolveRoutesRequest(account_id="acct-1", application="hooks", event_type="test")
                    )
                    if not routes.routes:
                        break
                    await asyncio.sleep(0.02)
                assert not routes.routes, f"B still routes to the endpoint A disabled (filter {flt.id})"
                watcher.close()
                return latency


async def test_two_replicas_on_postgresql(pg_url):
    # A slow poll: only LISTEN/NOTIFY can make the change arrive quickly.
    latency = await two_replicas_see_each_others_changes(pg_url, poll_seconds=2.0)
    assert latency < 1.5, f"NOTIFY should wake replica B at once, took {latency:.2f}s"


async def test_two_replicas_on_sqlite_by_polling(sqlite_url):
    await two_replicas_see_each_others_changes(sqlite_url, poll_seconds=0.1)


async def test_pruning_runs_in_the_background(database_url):
    from sqlalchemy import func, select

    async with running_registry(
        database_url, registry_change_retention_seconds=0.2, registry_change_prune_interval_seconds=0.2
    ) as (server, port):
        async with channel(f"127.0.0.1:{port}") as ch:
            await Registry(port, server, ch).endpoint("acct-1", "ops")
        database = server.registry.database
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while asyncio.get_running_loop().time() < deadline:
            async with database.read() as session:
                left = (await session.execute(select(func.count()).select_from(Change))).scalar_one()
            if left == 0:
                break
            await asyncio.sleep(0.1)
        assert left == 0
        assert await server.registry.follower.current_sequence() >= 2  # the sequence is remembered


async def test_a_write_returns_once_every_open_change_stream_has_sent_it(database_url):
    """A matcher takes each message as soon as it arrives, so a message produced right after a filter
    change could overtake the change on its way to the matcher's route cache. A write therefore
    returns only once every change stream open on the replica has sent it (bounded: a stream that
    does not keep up holds writes at most `timeout`)."""
    from services.registry.change_log import STREAMED_WITHIN, ChangeFollower
    from services.registry.database import ENDPOINT, Database
    from services.registry.server import migrate

    await migrate(database_url)
    database = Database(database_url)
    follower = ChangeFollower(database, 0.1, 3600.0, 3600.0, on_changes=lambda _notes: None)
    await follower.start()

    async def write(resource: str) -> None:
        async with database.write() as unit:
            unit.record(ENDPOINT, resource, "acct-1")

    try:
        async with follower.stream(follower.known_sequence) as sent:
            before = follower.known_sequence
            writing = asyncio.create_task(write("e-1"))
            await asyncio.wait_for(follower.wait_beyond(before, timeout=DEADLINE), DEADLINE)
            assert follower.known_sequence > before  # committed and read by the follower...
            await asyncio.sleep(0.05)
            assert not writing.done()  # ...but not sent by the stream: the write waits
            await sent(follower.known_sequence)
            await asyncio.wait_for(writing, 1.0)

            # A stream that never sends holds a write only up to the bound.
            started = asyncio.get_running_loop().time()
            await write("e-2")
            assert STREAMED_WITHIN <= asyncio.get_running_loop().time() - started < STREAMED_WITHIN + 4
        # With no stream open, nothing to wait for.
        started = asyncio.get_running_loop().time()
        await write("e-3")
        assert asyncio.get_running_loop().time() - started < STREAMED_WITHIN
    finally:
        await follower.stop()
        await database.dispose()
