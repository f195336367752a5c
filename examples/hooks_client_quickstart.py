"""An application's start-up with hooks_client: register its event types, then publish.

With `make run` up (and `pip install ./client`, or the repository's .venv):

    python examples/hooks_client_quickstart.py

It registers examples/policies.yaml (idempotent: a second run changes nothing, and says so), then
publishes one event over Kafka and one over gRPC, each printed with its id. The addresses are the
HOOKS_* variables hooks itself reads (HOOKS_REGISTRY_TARGET, HOOKS_KAFKA_BOOTSTRAP_SERVERS,
HOOKS_KAFKA_TOPIC, HOOKS_MATCHER_TARGET), defaulting to `make run`'s; the account is
HOOKS_EXAMPLE_ACCOUNT (000001 by default).
"""

from __future__ import annotations

import os
from pathlib import Path

from hooks_client import GrpcPublisher, Publisher, Rejected, register

ACCOUNT = os.environ.get("HOOKS_EXAMPLE_ACCOUNT", "000001")

registration = register(Path(__file__).with_name("policies.yaml"))
print(f"registered {registration.application.name}:", *registration.summary(), sep="\n  ")

with Publisher() as publisher:  # Kafka: hooks.outbox
    sent = publisher.publish(
        application="policies",
        event_type="policy-triggered",
        level="",
        message={"policy": "no-root-login", "host": "web-1"},
        account_id=ACCOUNT,
    )
    print(f"published over Kafka: {sent.id} ({sent.topic}/{sent.partition}/{sent.offset})")
    try:
        publisher.publish(
            application="policies", event_type="policy-changed", level="high\n", message={}, account_id=ACCOUNT
        )
    except Rejected as rejected:  # checked here with the matcher's rules: never sent
        print(f"refused before sending ({rejected.reason}): {rejected.description}")

with GrpcPublisher() as publisher:  # the matcher's PublishMessage, for services without Kafka
    sent = publisher.publish(
        application="policies", event_type="policy-changed", level="high", message="policy edited", account_id=ACCOUNT
    )
    print(f"published over gRPC: {sent.id} ({sent.topic}/{sent.partition}/{sent.offset})")
