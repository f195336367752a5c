"""Routing follows the registry: changes take effect for the next messages within a couple of seconds
(no restart), and a registry that is down makes messages wait, never dead-lettered or skipped."""

from __future__ import annotations

import asyncio
import time

from tests.helpers.matcher import APP, group_of, message, running_matcher
from tests.helpers.waiting import eventually

STALENESS = 2.0  # seconds a change may take to reach routing


async def test_changes_to_endpoints_and_filters_apply_to_the_next_messages(broker, registry, sender, receiver):
    sentinel = await registry.endpoint(receiver.url("sentinel"))
    await registry.filter([sentinel.id])  # everything: every message reaches the sentinel
    watched = await registry.endpoint(receiver.url("watched"))
    watched_filter = await registry.filter([watched.id], applications=[APP])

    async with running_matcher(broker, registry.target, sender.target) as matcher:
        routes = matcher.matcher.routes
        await eventually(lambda: routes.live, message="the matcher follows the registry's changes")
        number = 0

        async def send_and_wait() -> str:
            """One message; returns its text once the sentinel got it (so routing was decided)."""
            nonlocal number
            number += 1
            text = f"m{number}"
            await broker.aproduce([message(message={"text": text})], partition=number % 2)
            await eventually(lambda: text in receiver.texts("sentinel"), message=f"{text} reaches the sentinel")
            return text

        async def change(action) -> None:
            """Makes a change, then waits until the matcher has seen it, which must be quick."""
            seen = routes.changes_applied
            started = time.monotonic()
            await action
            await eventually(lambda: routes.changes_applied > seen, message="the matcher saw the change")
            assert time.monotonic() - started < STALENESS

        first = await send_and_wait()  # caches the route (both endpoints)
        await eventually(lambda: first in receiver.texts("watched"))

        await change(registry.set_endpoint_enabled(watched.id, False))
        disabled = await send_and_wait()

        await change(registry.set_endpoint_enabled(watched.id, True))
        enabled_again = await send_and_wait()
        await eventually(lambda: enabled_again in receiver.texts("watched"))

        await change(registry.delete_filter(watched_filter.id))
        filter_deleted = await send_and_wait()

        newcomer = await registry.endpoint(receiver.url("newcomer"))
        await change(registry.filter([newcomer.id], event_types=[(APP, "policy-triggered")]))
        new_filter = await send_and_wait()
        await eventually(lambda: new_filter in receiver.texts("newcomer"))

        # The change stream breaks (registry restart): the cache is dropped, the stream re-opened after the
        # last change seen, and changes made after it count again.
        await registry.stop()
        await eventually(lambda: not routes.live, message="the matcher noticed the stream broke")
        await registry.start()
        await eventually(lambda: routes.live, message="the matcher follows the changes again")
        await change(registry.set_endpoint_enabled(newcomer.id, False))
        after_restart = await send_and_wait()
        await change(registry.set_endpoint_enabled(newcomer.id, True))

        # Give any wrongly routed delivery the time to arrive before asserting it did not.
        last = await send_and_wait()
        await eventually(lambda: last in receiver.texts("newcomer"))

    watched_texts = receiver.texts("watched")
    assert disabled not in watched_texts
    assert filter_deleted not in watched_texts
    assert watched_texts == [first, enabled_again]
    assert after_restart not in receiver.texts("newcomer")
    assert receiver.texts("newcomer") == [new_filter, last]


async def test_registry_down_at_start_then_up_messages_wait_and_are_delivered(broker, registry, sender, receiver):
    endpoint = await registry.endpoint(receiver.url("late"))
    await registry.filter([endpoint.id])
    await registry.stop()

    texts = [f"waiting-{i}" for i in range(6)]
    await broker.aproduce([message(message={"text": t}) for t in texts[:3]], partition=0)
    await broker.aproduce(
        [message(message={"text": t}) for t in texts[3:]] + [message(application="nope")], partition=1
    )

    async with running_matcher(broker, registry.target, sender.target) as matcher:
        consumer = matcher.matcher.consumer
        await eventually(lambda: consumer.in_flight == 7, message="all messages read and waiting")
        await asyncio.sleep(1.0)  # the registry stays down a while: nothing may move meanwhile
        assert consumer.in_flight == 7
        assert consumer.counters.dead_lettered == 0 and consumer.counters.handed_off == 0
        assert await broker.acommitted(group_of(matcher)) == [-1001, -1001]  # nothing committed

        await registry.start()
        await eventually(lambda: set(texts) <= set(receiver.texts("late")), message="delivered once the registry is up")
        await eventually(lambda: consumer.counters.dead_lettered == 1)  # the unknown application, now knowable
        await eventually(lambda: broker.committed(group_of(matcher)) == [3, 4], message="offsets committed")
    dead = await broker.aread(broker.dlq, 1)
    assert dict(dead[0].headers())["hooks.error.reason"] == b"unknown_application"
