"""The matcher's Prometheus metrics (served by the common /metrics listener, HOOKS_METRICS_PORT).

What an operator watches: messages coming in (consumed), going nowhere on purpose (unrouted) or by
fault (dead-lettered, by reason), deliveries handed to senders and how often a hand-off had to be
sent again, the route cache's hit ratio, and how far behind the group is (lag per partition).

Consumer lag comes from librdkafka's own statistics (`statistics.interval.ms`, see `LagFromStats`):
per partition, the high watermark the broker reported on its last fetch minus the offset this
consumer stored (or, before it stored one, the next offset it will read). Tansu's answer to
`get_watermark_offsets` is not trusted for it; the fetch responses' high watermark is what librdkafka
reports as `hi_offset`.
"""

from __future__ import annotations

import json

from prometheus_client import Counter, Gauge

from services.common.logging import get_logger

log = get_logger(__name__)

MESSAGES_CONSUMED = Counter(
    "hooks_matcher_messages_consumed_total", "Records read from the outbox topic, by topic.", ["topic"]
)
MESSAGES_DEAD_LETTERED = Counter(
    "hooks_matcher_messages_dead_lettered_total",
    "Records written to the dead-letter topic, by reason (invalid_json, missing_field, unknown_application...).",
    ["reason"],
)
MESSAGES_ROUTED = Counter(
    "hooks_matcher_messages_routed_total", "Messages with at least one route, acknowledged by a sender."
)
MESSAGES_UNROUTED = Counter(
    "hooks_matcher_messages_unrouted_total", "Valid messages no enabled filter routes anywhere (dropped on purpose)."
)
DELIVERIES_HANDED = Counter(
    "hooks_matcher_deliveries_handed_total",
    "Deliveries (one per message and endpoint) a sender acknowledged as stored.",
)
RESENDS = Counter(
    "hooks_matcher_resends_total",
    "Hand-offs to a sender that were not acknowledged (stream broke, timeout, refusal) and were sent again.",
)
ROUTE_CACHE_HITS = Counter("hooks_matcher_route_cache_hits_total", "Route lookups answered by the cache.")
ROUTE_CACHE_MISSES = Counter(
    "hooks_matcher_route_cache_misses_total", "Route lookups that asked the registry (or waited on such a question)."
)
IN_FLIGHT = Gauge("hooks_matcher_in_flight", "Messages being validated, routed or handed to senders right now.")
CONSUMER_LAG = Gauge(
    "hooks_matcher_consumer_lag",
    "Records of a partition not yet done by this consumer: high watermark minus the stored offset.",
    ["topic", "partition"],
)


class LagFromStats:
    """librdkafka's `stats_cb`: turns each statistics document into hooks_matcher_consumer_lag.

    It runs on the consumer's thread (inside `consume`); partitions no longer assigned have their
    gauge removed so a revoked partition does not report a stale lag forever."""

    def __init__(self) -> None:
        self._reported: set[tuple[str, str]] = set()
        #: The lag last computed, {(topic, partition): lag} (tests read it).
        self.last: dict[tuple[str, int], int] = {}

    def __call__(self, document: str) -> None:
        try:
            stats = json.loads(document)
        except ValueError:
            return
        lags = partition_lags(stats)
        self.last = lags
        current = {(topic, str(partition)) for topic, partition in lags}
        for stale_topic, stale_partition in self._reported - current:
            try:
                CONSUMER_LAG.remove(stale_topic, stale_partition)
            except KeyError:
                pass
        for (topic, partition), lag in lags.items():
            CONSUMER_LAG.labels(topic, str(partition)).set(lag)
        self._reported = current


def partition_lags(stats: dict) -> dict[tuple[str, int], int]:
    """{(topic, partition): lag} for the partitions this consumer fetches, from a statistics document.

    The lag is `hi_offset` (the high watermark of the last fetch) minus the stored offset, else the
    committed one, else the partition's low watermark (a group that has done nothing yet); partitions
    with no high watermark yet are left out."""
    lags: dict[tuple[str, int], int] = {}
    for topic, topic_stats in (stats.get("topics") or {}).items():
        for key, p in (topic_stats.get("partitions") or {}).items():
            partition = int(key)
            if partition < 0 or p.get("fetch_state") in (None, "none", "stopped"):
                continue  # the internal UA partition, or one not assigned to us
            high = p.get("hi_offset", -1)
            if high is None or high < 0:
                continue
            position = 0  # nothing stored, committed nor known low: everything is still to do
            for name in ("stored_offset", "committed_offset", "lo_offset"):
                value = p.get(name, -1)
                if value is not None and value >= 0:
                    position = value
                    break
            lags[(topic, partition)] = max(0, high - position)
    return lags
