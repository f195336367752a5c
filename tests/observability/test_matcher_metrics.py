"""The matcher's metrics say what became of the messages: consumed, routed or not, dead-lettered and
why, deliveries handed to senders, the route cache's hits, messages in flight, and the lag of each
partition (computed from librdkafka's statistics: Tansu's own watermark answer is not to be trusted)."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from services.matcher.metrics import partition_lags
from tests.helpers.observability import incoming
from tests.helpers.waiting import eventually


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def snapshot(topic: str) -> dict[str, float]:
    return {
        "consumed": value("hooks_matcher_messages_consumed_total", topic=topic),
        "routed": value("hooks_matcher_messages_routed_total"),
        "unrouted": value("hooks_matcher_messages_unrouted_total"),
        "handed": value("hooks_matcher_deliveries_handed_total"),
        "invalid_json": value("hooks_matcher_messages_dead_lettered_total", reason="invalid_json"),
        "unknown_application": value("hooks_matcher_messages_dead_lettered_total", reason="unknown_application"),
        "hits": value("hooks_matcher_route_cache_hits_total"),
        "misses": value("hooks_matcher_route_cache_misses_total"),
    }


async def test_the_matcher_counts_what_became_of_each_message(pipeline):
    topic = pipeline.kafka.topic
    await pipeline.endpoint("first", "first")
    await pipeline.endpoint("second", "second")  # two endpoints: one message, two deliveries
    before = snapshot(topic)

    await pipeline.aproduce(
        [incoming(), incoming(account="nobody-listens"), b"{not json", incoming(application="no-such-app")]
    )
    await eventually(lambda: len(pipeline.receiver.received) >= 2, message="2 webhooks")

    def moved() -> dict[str, float]:
        now = snapshot(topic)
        return {name: now[name] - before[name] for name in now}

    await eventually(lambda: moved()["consumed"] == 4 and moved()["unknown_application"] == 1, message="4 consumed")
    delta = moved()
    assert delta["routed"] == 1
    assert delta["unrouted"] == 1
    assert delta["handed"] == 2
    assert delta["invalid_json"] == 1
    assert delta["misses"] >= 3  # three valid messages, three questions (the cache was empty)

    # The same question again is answered by the cache (it follows the registry's change stream).
    await eventually(lambda: pipeline.matcher.matcher.routes.live, message="route cache live")
    await pipeline.aproduce([incoming()])
    await eventually(lambda: len(pipeline.receiver.received) >= 4, message="2 more webhooks")
    await eventually(lambda: moved()["routed"] == 2, message="second message routed")
    assert moved()["hits"] >= 1
    await eventually(lambda: value("hooks_matcher_in_flight") == 0, message="nothing in flight")


async def test_consumer_lag_counts_what_is_not_done_yet_per_partition(pipeline):
    topic = pipeline.kafka.topic
    await pipeline.endpoint("hook", "hook")
    await pipeline.aproduce([incoming()], partition=0)
    await eventually(lambda: pipeline.receiver.received, message="the webhook")
    # Done: no lag on either partition once the stored offset caught up.
    await eventually(
        lambda: (
            REGISTRY.get_sample_value("hooks_matcher_consumer_lag", {"topic": topic, "partition": "0"}) == 0
            and REGISTRY.get_sample_value("hooks_matcher_consumer_lag", {"topic": topic, "partition": "1"}) == 0
        ),
        message="lag 0 on partitions 0 and 1",
    )

    # With no sender to take them, three messages wait: the lag of their partition says so.
    await pipeline.sender.stop(0)
    resends = value("hooks_matcher_resends_total")
    await pipeline.aproduce([incoming(), incoming(), incoming()], partition=1)
    await eventually(
        lambda: value("hooks_matcher_consumer_lag", topic=topic, partition="1") == 3, message="lag 3 on partition 1"
    )
    assert value("hooks_matcher_consumer_lag", topic=topic, partition="0") == 0
    await eventually(lambda: value("hooks_matcher_in_flight") >= 3, message="3 messages in flight")
    await eventually(lambda: value("hooks_matcher_resends_total") > resends, message="hand-offs sent again")
    assert value("hooks_matcher_consumer_lag", topic=topic, partition="1") == 3  # still not done


def test_lag_is_the_high_watermark_minus_the_stored_offset():
    """From a statistics document as librdkafka reports it against Tansu (shape kept, values real)."""
    stats = {
        "topics": {
            "hooks.outbox": {
                "partitions": {
                    "0": {"fetch_state": "active", "hi_offset": 10, "lo_offset": 0, "next_offset": 10,
                          "stored_offset": 4, "committed_offset": 4},
                    "1": {"fetch_state": "active", "hi_offset": 3, "lo_offset": 0, "next_offset": 3,
                          "stored_offset": -1001, "committed_offset": -1001},
                    "2": {"fetch_state": "active", "hi_offset": 7, "lo_offset": 0, "next_offset": 7,
                          "stored_offset": -1001, "committed_offset": 5},
                    "3": {"fetch_state": "none", "hi_offset": -1001, "stored_offset": -1001},
                    "-1": {"fetch_state": "none", "hi_offset": -1001, "next_offset": 0},
                }
            }
        }
    }  # fmt: skip
    assert partition_lags(json.loads(json.dumps(stats))) == {
        ("hooks.outbox", 0): 6,  # 4 done of 10
        ("hooks.outbox", 1): 3,  # nothing stored nor committed yet: all of it
        ("hooks.outbox", 2): 2,  # committed (by an earlier run) but nothing stored since
    }
