"""Telling an outage from a poison: a registry or sender that is down (or fails for everyone) is waited
out and nothing is dead-lettered for it; a message that keeps failing on its own while others get
through is dead-lettered with a reason (`undeliverable`, `rejected_by_registry`) after a bounded number
of tries, and holds no in-flight slot for ever."""

from __future__ import annotations

import asyncio
import contextlib
import json

import grpc
import pytest

from hooks.registry.v1 import routing_pb2_grpc
from services.common.channels import channel
from services.matcher.poison import OWN_FAILURES_LIMIT
from services.matcher.route_cache import PROBE_ACCOUNT
from tests.helpers.matcher import Sender, message, running_matcher
from tests.helpers.waiting import eventually

POISONED = "000666"  # an account the registry proxy fails on


async def test_a_message_a_sender_keeps_refusing_is_dead_lettered_while_others_are_delivered(
    broker, registry, receiver, tmp_path
):
    """A sender whose gRPC limit is below the matcher's refuses a large request by ending the stream
    it came on (RESOURCE_EXHAUSTED), every time: that message is dead-lettered as undeliverable; the
    messages around it are delivered, and every stream is re-opened."""
    sender = Sender(
        f"sqlite:///{tmp_path / 'small-sender.db'}",
        registry.target,
        broker.settings(),
        settings={"grpc_max_message_bytes": 64 * 1024},
    )
    await sender.start()
    try:
        endpoint = await registry.endpoint(receiver.url("around"))
        await registry.filter([endpoint.id])
        poison = message(message={"text": "poison", "padding": "x" * 100_000})  # within the matcher's limits
        placed = await broker.aproduce([poison, message(message={"text": "first"})], partition=0)

        async with running_matcher(broker, registry.target, sender.target) as matcher:
            consumer = matcher.matcher.consumer
            # Others keep flowing while the poison is tried (what tells it from an outage).
            sent: list[str] = []

            async def keep_producing() -> None:
                for index in range(300):
                    if consumer.counters.dead_lettered:
                        return
                    sent.append(f"around-{index}")
                    await broker.aproduce([message(message={"text": sent[-1]})], partition=index % 2)
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(keep_producing(), 60)
            (dead,) = await broker.aread(broker.dlq, 1)
            headers = dict(dead.headers())
            assert headers["hooks.error.reason"] == b"undeliverable"
            assert headers["hooks.error.offset"] == str(placed[0][1]).encode()
            assert f"{OWN_FAILURES_LIMIT} failures of its own".encode() in headers["hooks.error.message"]
            assert b"RESOURCE_EXHAUSTED" in headers["hooks.error.message"]
            assert dead.value() == json.dumps(poison).encode()  # the original record

            expected = {"first", *sent}
            await eventually(lambda: expected <= set(receiver.texts("around")), message="the others delivered")
            await eventually(lambda: consumer.in_flight == 0, message="nothing left in flight")
            assert consumer.counters.dead_lettered == 1
            assert "poison" not in receiver.texts("around")
            await eventually(
                lambda: matcher.matcher.senders.connected == matcher.matcher.settings.matcher_sender_streams,
                message="every stream re-opened",
            )
            await broker.aproduce([message(message={"text": "last"})], partition=1)
            await eventually(lambda: "last" in receiver.texts("around"), timeout=2.0, message="delivered promptly")
    finally:
        await sender.stop()


async def test_a_sender_outage_is_waited_out_and_nothing_is_dead_lettered(broker, registry, sender, receiver):
    endpoint = await registry.endpoint(receiver.url("outage"))
    await registry.filter([endpoint.id])
    async with running_matcher(broker, registry.target, sender.target, matcher_deliver_timeout_seconds=0.3) as matcher:
        consumer = matcher.matcher.consumer
        await broker.aproduce([message(message={"text": "before"})], partition=0)
        await eventually(lambda: "before" in receiver.texts("outage"), message="delivered before the outage")

        await sender.stop()
        texts = [f"during-{i}" for i in range(6)]
        await broker.aproduce([message(message={"text": t}) for t in texts[:3]], partition=0)
        await broker.aproduce([message(message={"text": t}) for t in texts[3:]], partition=1)
        await eventually(lambda: consumer.in_flight == len(texts), message="all read and waiting")
        # Each is tried again and again, far more often than a poison is borne.
        tries = consumer.counters.resent
        await eventually(
            lambda: consumer.counters.resent >= tries + len(texts) * (OWN_FAILURES_LIMIT + 1),
            message="many tries during the outage",
        )
        assert consumer.counters.dead_lettered == 0
        assert consumer.in_flight == len(texts)

        await sender.start()
        await eventually(
            lambda: set(texts) <= set(receiver.texts("outage")), message="delivered once the sender is back"
        )
        await eventually(lambda: consumer.in_flight == 0)
        assert consumer.counters.dead_lettered == 0
    assert await broker.aread(broker.dlq, 1, timeout=1.0) == []


class FailingRegistry(routing_pb2_grpc.RoutingServiceServicer):
    """A proxy in front of the real registry that answers ResolveRoutes with `code` for the accounts in
    `failing` (or for everyone while `fail_all`): the real registry cannot be made to fail for one
    account on purpose. Everything else is the real registry's answer."""

    def __init__(self, target: str, code: grpc.StatusCode):
        self.channel = channel(target)
        self.stub = routing_pb2_grpc.RoutingServiceStub(self.channel)
        self.code = code
        self.failing: set[str] = set()
        self.fail_all = False
        self.refused = 0

    async def ResolveRoutes(self, request, context):
        if self.fail_all or request.account_id in self.failing:
            self.refused += 1
            await context.abort(self.code, "the registry failed on this question")
        return await self.stub.ResolveRoutes(request)

    async def WatchChanges(self, request, context):
        async for change in self.stub.WatchChanges(request):
            yield change


@contextlib.asynccontextmanager
async def failing_registry(target: str, code: grpc.StatusCode):
    proxy = FailingRegistry(target, code)
    server = grpc.aio.server()
    routing_pb2_grpc.add_RoutingServiceServicer_to_server(proxy, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield proxy, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
        await proxy.channel.close()


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNKNOWN]
)
async def test_a_message_the_registry_keeps_failing_on_is_dead_lettered_while_others_are_routed(
    broker, registry, sender, receiver, code
):
    """RESOURCE_EXHAUSTED (an answer too large) used to be taken as an outage and waited out for ever.
    The registry answers others (here the matcher's own probe question too), so it is the message's."""
    endpoint = await registry.endpoint(receiver.url("routed"))
    await registry.filter([endpoint.id])
    async with failing_registry(registry.target, code) as (proxy, target):
        proxy.failing.add(POISONED)
        placed = await broker.aproduce(
            [message(account_id=POISONED, message={"text": "poisoned"}), message(message={"text": "fine"})], partition=0
        )
        async with running_matcher(broker, target, sender.target) as matcher:
            consumer = matcher.matcher.consumer
            await eventually(lambda: "fine" in receiver.texts("routed"), message="the other message delivered")
            (dead,) = await broker.aread(broker.dlq, 1)
            headers = dict(dead.headers())
            assert headers["hooks.error.reason"] == b"rejected_by_registry"
            assert headers["hooks.error.offset"] == str(placed[0][1]).encode()
            assert code.name.encode() in headers["hooks.error.message"]
            assert f"{OWN_FAILURES_LIMIT} failures of its own".encode() in headers["hooks.error.message"]
            await eventually(lambda: consumer.in_flight == 0, message="nothing left in flight")
            assert consumer.counters.dead_lettered == 1
            assert proxy.refused >= OWN_FAILURES_LIMIT


async def test_a_registry_that_fails_for_everyone_is_waited_out(broker, registry, sender, receiver):
    endpoint = await registry.endpoint(receiver.url("patient"))
    await registry.filter([endpoint.id])
    async with failing_registry(registry.target, grpc.StatusCode.INTERNAL) as (proxy, target):
        proxy.fail_all = True
        texts = [f"patient-{i}" for i in range(3)]
        await broker.aproduce([message(message={"text": t}) for t in texts], partition=0)
        async with running_matcher(broker, target, sender.target) as matcher:
            consumer = matcher.matcher.consumer
            await eventually(lambda: consumer.in_flight == len(texts), message="all read")
            await eventually(lambda: proxy.refused >= 4 * OWN_FAILURES_LIMIT, message="asked again and again")
            assert consumer.counters.dead_lettered == 0
            assert consumer.in_flight == len(texts)

            proxy.fail_all = False
            await eventually(lambda: set(texts) <= set(receiver.texts("patient")), message="delivered once it answers")
            await eventually(lambda: consumer.in_flight == 0)
            assert consumer.counters.dead_lettered == 0
    assert await broker.aread(broker.dlq, 1, timeout=1.0) == []


async def test_messages_failing_on_their_own_do_not_take_the_room_of_the_next_ones(broker, registry, sender, receiver):
    """At `matcher_max_in_flight`, messages the registry fails on (and that nothing yet tells from an
    outage: its probe fails too) are tried again without holding the room (up to as many again): the
    messages behind them are read and delivered meanwhile."""
    endpoint = await registry.endpoint(receiver.url("behind"))
    await registry.filter([endpoint.id])
    async with failing_registry(registry.target, grpc.StatusCode.INTERNAL) as (proxy, target):
        proxy.failing |= {POISONED, PROBE_ACCOUNT}
        stuck = [message(account_id=POISONED, message={"text": f"stuck-{i}"}) for i in range(4)]
        texts = [f"behind-{i}" for i in range(4)]
        await broker.aproduce(stuck + [message(message={"text": t}) for t in texts], partition=0)
        async with running_matcher(broker, target, sender.target, matcher_max_in_flight=4) as matcher:
            consumer = matcher.matcher.consumer
            await eventually(
                lambda: set(texts) <= set(receiver.texts("behind")), message="the messages behind delivered"
            )
            await eventually(lambda: consumer.in_flight == len(stuck), message="only the failing ones left")
            assert consumer.counters.dead_lettered == 0

            proxy.failing.clear()  # the registry answers them: no route (that account has no filter)
            await eventually(lambda: consumer.in_flight == 0, message="the failing ones done")
            assert consumer.counters.unrouted == len(stuck)
            assert consumer.counters.dead_lettered == 0
