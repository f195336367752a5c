"""The matcher's settings (HOOKS_MATCHER_*); the Kafka connection is services.common.settings.KafkaSettings."""

from __future__ import annotations

from services.common.settings import MATCHER_ADDRESS, CommonSettings


class MatcherSettings(CommonSettings):
    #: Where the matcher's gRPC server (MatcherService, health, reflection) listens.
    matcher_listen_address: str = MATCHER_ADDRESS
    #: The Kafka consumer group of every matcher replica on the outbox topic.
    matcher_group_id: str = "hooks-matcher"
    #: Kafka session timeout (ms): how long the group waits for a silent matcher before rebalancing.
    matcher_session_timeout_ms: int = 10_000
    #: Most messages being validated, routed and handed to senders at once; consumption pauses above it.
    matcher_max_in_flight: int = 1_000
    #: Longest time (ms) the broker may hold a fetch waiting for new messages (librdkafka's fetch.wait.max.ms; its default is 500).
    matcher_fetch_wait_max_ms: int = 10
    #: Most messages one consume call returns (those already fetched: it waits only for the first).
    matcher_consume_batch_size: int = 500
    #: Largest incoming message (bytes); larger ones are dead-lettered as too_large.
    matcher_max_message_bytes: int = 256 * 1024
    #: Concurrent DeliverBatch streams to the senders (spread over replicas by round_robin).
    matcher_sender_streams: int = 2
    #: Seconds to wait for a sender's answer to one request before sending it again.
    matcher_deliver_timeout_seconds: float = 30.0
    #: Longest pause (seconds) between retries when the registry, a sender or the broker is unavailable.
    matcher_max_backoff_seconds: float = 5.0
    #: How often (ms) the Kafka client reports its statistics, from which the consumer lag metric is computed; 0: never.
    matcher_stats_interval_ms: int = 5_000
