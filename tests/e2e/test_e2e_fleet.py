"""The fleet: two senders and two matchers as processes on one PostgreSQL and the broker, 1,000
messages for 100 endpoints of 20 accounts (5,000 deliveries); one sender and one matcher are killed
-9 mid-stream and started again. At the receivers: every delivery arrives, the duplicates are no more
than what the killed sender can have had on the wire (its concurrency), and no delivery is ever
attempted by two senders at once (the receiver records overlapping requests per webhook-id)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from aiohttp import web

from services.common.broker import free_port
from tests.helpers.e2e import Hooks, incoming, produce
from tests.helpers.groups import SESSION_TIMEOUT_MS
from tests.helpers.http import Served
from tests.helpers.processes import ServiceProcess
from tests.helpers.waiting import eventually

ACCOUNTS = 20
ENDPOINTS_PER_ACCOUNT = 5
MESSAGES = 1000
SENDER_CONCURRENCY = 64


class OverlapReceiver(Served):
    """POST /<endpoint>: records (endpoint, message id, webhook-id) and any request arriving while
    another with the same webhook-id is still being answered."""

    path = "/{endpoint}"

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str]] = []
        #: webhook-id -> when each copy arrived
        self.arrivals: dict[str, list[float]] = {}
        self.in_flight: dict[str, int] = {}
        self.overlaps: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        webhook_id = request.headers["webhook-id"]
        self.in_flight[webhook_id] = self.in_flight.get(webhook_id, 0) + 1
        if self.in_flight[webhook_id] > 1:
            self.overlaps.append(webhook_id)
        try:
            body = json.loads(await request.read())
            await asyncio.sleep(0.005)  # an answer takes a moment: overlapping attempts would show
            self.received.append((request.match_info["endpoint"], body["id"], webhook_id))
            self.arrivals.setdefault(webhook_id, []).append(time.time())
            return web.Response(text="ok")
        finally:
            self.in_flight[webhook_id] -= 1

    def delivered(self) -> set[tuple[str, str]]:
        return {(endpoint, message_id) for endpoint, message_id, _ in self.received}


async def test_two_senders_and_two_matchers_survive_a_kill_of_one_each(kafka, topics, pg_url, tmp_path):
    registry_address = f"127.0.0.1:{free_port()}"
    senders = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    matchers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    common = {
        "HOOKS_REGISTRY_LISTEN_ADDRESS": registry_address,
        "HOOKS_REGISTRY_TARGET": registry_address,
        "HOOKS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "HOOKS_KAFKA_TOPIC": topics["outbox"],
        "HOOKS_KAFKA_DLQ_TOPIC": topics["dlq"],
        "HOOKS_REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "HOOKS_SENDER_DATABASE_URL": pg_url,
        "HOOKS_SENDER_ALLOWED_NETWORKS": "127.0.0.0/8",
        "HOOKS_SENDER_RETRY_SCHEDULE": "50ms,100ms,200ms,400ms,800ms,1s,1s,1s,1s,1s",
        "HOOKS_SENDER_CONCURRENCY": str(SENDER_CONCURRENCY),
        # Renewed every second; an attempt starts only with half a lease left, so an event loop held up
        # to 3 s (six processes and PostgreSQL on two cores) still never sends what another took over.
        "HOOKS_SENDER_LEASE_SECONDS": "6",
        "HOOKS_SENDER_LEASE_RENEWAL_SECONDS": "1",
        "HOOKS_SENDER_POLL_INTERVAL_SECONDS": "0.2",
        "HOOKS_MATCHER_GROUP_ID": f"e2e-fleet-{uuid.uuid4().hex[:8]}",
        "HOOKS_MATCHER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "HOOKS_MATCHER_MAX_BACKOFF_SECONDS": "0.5",
        "HOOKS_SHUTDOWN_GRACE_SECONDS": "2",
    }

    def env_of(index: int) -> dict[str, str]:
        """Sender `index` and matcher `index` (which hands over to that sender)."""
        return {
            **common,
            "HOOKS_SENDER_LISTEN_ADDRESS": senders[index],
            "HOOKS_SENDER_TARGET": senders[index],
            "HOOKS_MATCHER_LISTEN_ADDRESS": matchers[index],
            "HOOKS_MATCHER_TARGET": matchers[index],
        }

    def process(name: str, index: int) -> ServiceProcess:
        log_dir = tmp_path / f"{name}-{index}"
        log_dir.mkdir(exist_ok=True)
        return ServiceProcess(name, env_of(index), log_dir)

    receiver = await OverlapReceiver().start()
    registry = process("registry", 0)
    fleet = {(name, i): process(name, i) for name in ("sender", "matcher") for i in range(2)}
    clients: list[Hooks] = []
    try:
        await registry.start()
        for service in fleet.values():
            await service.start()
        expected: set[tuple[str, str]] = set()
        messages = []
        for a in range(ACCOUNTS):
            account = f"fleet-{a}-{uuid.uuid4().hex[:6]}"
            hooks = Hooks(registry_address, senders[0], account=account)
            clients.append(hooks)
            if a == 0:
                await hooks.register()
            names = [f"a{a}e{e}" for e in range(ENDPOINTS_PER_ACCOUNT)]
            endpoint_ids = [
                (await hooks.endpoint(name, f"http://127.0.0.1:{receiver.port}/{name}")).id for name in names
            ]
            await hooks.filter(endpoint_ids)
            for n in range(MESSAGES // ACCOUNTS):
                message = incoming(account, "policies", "policy-triggered", "low", message=str(n))
                messages.append(message)
                expected.update((name, message["id"]) for name in names)
        await asyncio.to_thread(produce, kafka.bootstrap_servers, topics["outbox"], messages)

        await eventually(lambda: len(receiver.received) >= len(expected) // 4, timeout=60, message="deliveries begin")
        fleet[("sender", 0)].kill()
        fleet[("matcher", 0)].kill()
        killed_at = time.time()
        at_kill = len(receiver.delivered())
        assert at_kill < len(expected), "the kills came too late to test anything"
        fleet[("sender", 0)] = await process("sender", 0).start()
        fleet[("matcher", 0)] = await process("matcher", 0).start()

        await eventually(
            lambda: receiver.delivered() >= expected, timeout=120, message=f"all {len(expected)} deliveries"
        )
        duplicates = len(receiver.received) - len(expected)
        repeated = {w: times for w, times in receiver.arrivals.items() if len(times) > 1}
        first_before_kill = sum(1 for times in repeated.values() if times[0] <= killed_at)
        report = (
            f"killed one sender and one matcher after {at_kill} deliveries; {duplicates} delivered twice"
            f" ({len(repeated)} webhook-ids, {first_before_kill} of them first sent before the kill;"
            f" distinct ids per (endpoint, message): {len({(e, m, w) for e, m, w in receiver.received}) - len(expected)} extra)"
        )
        print(report)
        assert receiver.delivered() == expected
        assert duplicates <= SENDER_CONCURRENCY, report  # at most what the killed sender had on the wire
        assert receiver.overlaps == []  # never attempted by two senders at once
    finally:
        for hooks in clients:
            await hooks.close()
        for service in fleet.values():
            service.stop()
        registry.stop()
        await receiver.stop()
