"""No message is lost when the matcher or the sender is killed (SIGKILL, no drain) in the middle of a
stream of 1,000: after a restart every message is delivered at least once. The sender's queue is
tested on SQLite (`make run`) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from services.common.broker import free_port
from tests.helpers.e2e import ACCOUNT, Hooks, HttpReceiver, committed_total, incoming, produce
from tests.helpers.groups import SESSION_TIMEOUT_MS
from tests.helpers.processes import ServiceProcess
from tests.helpers.waiting import eventually

MESSAGES = 1000
KILL_AFTER = 200


def produce_stream(bootstrap: str, topic: str, messages: list[dict], delivered, lead: int = 300) -> None:
    """Publishes in batches, never more than `lead` ahead of what has been delivered, so a kill at
    KILL_AFTER deliveries lands with messages still to consume, in flight and yet to be published."""
    batch, deadline = 20, time.monotonic() + 120  # the deadline: never outlive a failed test
    for start in range(0, len(messages), batch):
        while start - delivered() > lead and time.monotonic() < deadline:
            time.sleep(0.02)
        produce(bootstrap, topic, messages[start : start + batch])


def distinct_ids(receiver: HttpReceiver) -> set[str]:
    return {json.loads(request.body)["id"] for request in receiver.requests}


@pytest.mark.parametrize(
    ("victim", "sender_database_url"),
    [("matcher", "sqlite"), ("sender", "sqlite"), ("sender", "postgresql")],
    indirect=["sender_database_url"],
)
async def test_every_message_is_delivered_after_a_service_is_killed_mid_stream(
    victim, sender_database_url, kafka, topics, tmp_path
):
    addresses = {name: f"127.0.0.1:{free_port()}" for name in ("registry", "sender", "matcher")}
    env = {
        **{f"HOOKS_{name.upper()}_LISTEN_ADDRESS": address for name, address in addresses.items()},
        **{f"HOOKS_{name.upper()}_TARGET": address for name, address in addresses.items()},
        "HOOKS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "HOOKS_KAFKA_TOPIC": topics["outbox"],
        "HOOKS_KAFKA_DLQ_TOPIC": topics["dlq"],
        "HOOKS_REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "HOOKS_SENDER_DATABASE_URL": sender_database_url,
        "HOOKS_SENDER_ALLOWED_NETWORKS": "127.0.0.0/8",
        # Quick recovery: millisecond retries, a short lease (a dead sender's deliveries come back after it).
        "HOOKS_SENDER_RETRY_SCHEDULE": "50ms,100ms,200ms,400ms,800ms,1s,1s,1s,1s,1s",
        "HOOKS_SENDER_LEASE_SECONDS": "3",
        "HOOKS_SENDER_POLL_INTERVAL_SECONDS": "0.2",
        "HOOKS_MATCHER_GROUP_ID": f"e2e-crash-{uuid.uuid4().hex[:8]}",
        "HOOKS_MATCHER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "HOOKS_MATCHER_MAX_BACKOFF_SECONDS": "0.5",
        "HOOKS_SHUTDOWN_GRACE_SECONDS": "2",
    }
    receiver = await HttpReceiver().start()
    services = {name: ServiceProcess(name, env, tmp_path) for name in ("registry", "sender", "matcher")}
    hooks = Hooks(addresses["registry"], addresses["sender"])
    try:
        for service in services.values():
            await service.start()
        await hooks.register()
        endpoint = await hooks.endpoint("receiver", receiver.url("/hook"))
        await hooks.filter([endpoint.id])

        messages = [incoming(ACCOUNT, "policies", "policy-triggered", "low", message=str(n)) for n in range(MESSAGES)]
        publishing = asyncio.create_task(
            asyncio.to_thread(
                produce_stream, kafka.bootstrap_servers, topics["outbox"], messages, lambda: len(receiver.requests)
            )
        )

        await eventually(lambda: len(distinct_ids(receiver)) >= KILL_AFTER, timeout=60, message="deliveries begin")
        services[victim].kill()
        killed_at = len(distinct_ids(receiver))
        committed_at_kill = committed_total(kafka.bootstrap_servers, env["HOOKS_MATCHER_GROUP_ID"], topics["outbox"], 2)
        assert killed_at < MESSAGES and committed_at_kill < MESSAGES, "the kill came too late to test anything"
        services[victim] = await ServiceProcess(victim, env, tmp_path).start()
        await publishing

        expected = {m["id"] for m in messages}
        await eventually(
            lambda: distinct_ids(receiver) >= expected,
            timeout=120,
            message=f"all {MESSAGES} delivered after the {victim} was killed",
        )
        assert distinct_ids(receiver) == expected
        duplicates = len(receiver.requests) - MESSAGES
        print(
            f"killed the {victim} after {killed_at} deliveries ({committed_at_kill} committed);"
            f" {duplicates} delivered more than once"
        )
    finally:
        await hooks.close()
        for service in reversed(list(services.values())):
            service.stop()
        await receiver.stop()
