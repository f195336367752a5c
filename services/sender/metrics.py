"""The sender's Prometheus metrics (served by the common /metrics listener, HOOKS_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES_QUEUED = Counter(
    "hooks_sender_deliveries_queued_total", "Deliveries stored by Deliver (replays of stored ones not counted)."
)
ATTEMPTS = Counter(
    "hooks_sender_attempts_total",
    "Delivery attempts, by endpoint type and outcome (succeeded, retry, failed, gone).",
    ["endpoint_type", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "hooks_sender_attempt_seconds",
    "How long one attempt took (connection, request and answer).",
    ["endpoint_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
IN_FLIGHT = Gauge("hooks_sender_in_flight", "Deliveries held by this sender's workers (running or waiting for a slot).")
ENDPOINTS_DISABLED = Counter(
    "hooks_sender_endpoints_disabled_total", "Endpoints the sender disabled, by cause (gone, failing).", ["cause"]
)
