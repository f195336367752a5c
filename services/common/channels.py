"""gRPC client channels between services: round-robin over every address a target resolves to
(a headless Service gives one per replica), keepalive, our message size limit, and mutual TLS when the
process has a certificate (services/common/tls.py).

Every channel hooks opens to its own services is made here:
    channel(settings.registry_target, tls=settings.tls)
"""

from __future__ import annotations

import json

import grpc

from services.common.tls import TlsFiles

SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                # Unary calls to a replica that is restarting are retried elsewhere.
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


def channel(target: str, max_message_bytes: int = 4 * 1024 * 1024, *, tls: TlsFiles | None = None) -> grpc.aio.Channel:
    """An aio channel to `target`: plaintext, or with `tls` a mutual-TLS one that presents the
    process's certificate and accepts only servers hooks' CA signed for the target's host name."""
    options = [
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # A replica that restarts is back in a second or two: try again at most every 2 s, not after
        # gRPC's default back-off (1 s growing 1.6-fold to 120 s).
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.min_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, tls.channel_credentials(), options=options)
