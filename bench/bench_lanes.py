"""The sender's lanes under the loads of issue 9: one tenant's slow or failing endpoints beside
another's, many tenants, fan-out, and a sender killed with work pending or mid-stream.

    flock /tmp/hooks-bench.lock .venv/bin/python bench/bench_lanes.py [--database sqlite|postgresql]
        [--scenarios backlog,kill-pending,...]  (all by default)

Each scenario starts its own fleet: the embedded broker, and the registry, sender and matcher as
processes (`python -m services.<name>`, as in production, so the sender can be killed -9 and its CPU
measured), on fresh databases (SQLite files, or PostgreSQL databases on 127.0.0.1 dropped after).
Messages are published with hooks_client through Kafka; a local aiohttp receiver answers webhooks,
slowly, with 500, or not at all until released, per endpoint. The figures:

- backlog: endpoint A answers after 2 s and has 5,000 deliveries queued; then 500 for account B's
  fast endpoint: how long until all of B's have arrived (target: within 5 s).
- kill-pending: 5,000 deliveries accepted and held (the endpoint does not answer); kill -9 of the
  sender, a new one started: seconds from the kill to the new sender's first delivery (target:
  within 20 s) and to the last, and the duplicates (at most what was on the wire).
- kill-midstream: 2,000 messages; the sender is killed -9 after 500 have arrived and started again:
  duplicates (target: at most the sender's concurrency) and the longest gap between two receipts: the
  new sender delivers what nobody held at once, and what the killed one held when its lease runs out
  (HOOKS_SENDER_LEASE_SECONDS, 15 s).
- rate-limit: 700 messages to an endpoint limited to 10 requests a second: the rate over the minute
  after the first second's burst (target: within 10 %).
- single / pair / tenants: 20,000 messages for 1 account x 1 endpoint, 1 account x 2 endpoints,
  1,000 accounts x 2 endpoints: deliveries/s and sender CPU per delivery (target: tenants >= 0.85
  of pair).
- fanout: 1,000 messages, each to 50 endpoints.
- healthy / failing: 10,000 messages over 100 accounts of one endpoint each; in `failing` 30 of them
  answer 500 (retries after 100, 200, 400 ms): the 70 healthy endpoints' deliveries/s (target:
  failing >= 0.8 of healthy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import grpc  # noqa: E402
from aiohttp import web  # noqa: E402
from bench_pipeline import cpu_seconds, databases  # noqa: E402

from hooks.registry.v1 import (  # noqa: E402
    applications_pb2,
    applications_pb2_grpc,
    endpoints_pb2,
    endpoints_pb2_grpc,
    filters_pb2,
    filters_pb2_grpc,
)
from hooks_client import Publisher  # noqa: E402
from services.common.broker import EmbeddedBroker, committed_offsets, ensure_topics, free_port  # noqa: E402
from services.common.identity import identity_metadata  # noqa: E402
from tests.helpers.processes import ServiceProcess  # noqa: E402

APPLICATION = "bench"
EVENT_TYPE = "tick"
OUTBOX = "hooks.outbox"
GROUP = "hooks-matcher"
SENDER_CONCURRENCY = 64
TIMEOUT = 600.0


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the receiver ---------------------------------------------------------------------------------


@dataclass
class Receipt:
    endpoint: str
    message_id: str
    webhook_id: str
    at: float
    produced_at: float


@dataclass
class Receiver:
    """POST /<endpoint name>: recorded, then answered after `delays[name]` seconds, with 500 for the
    names in `failing`, and not before `gate` is set for the names in `gated`."""

    receipts: list[Receipt] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    gated: set[str] = field(default_factory=set)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    failures: Counter = field(default_factory=Counter)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{endpoint}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, backlog=1024).start()
        return self

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["endpoint"]
        body = json.loads(await request.read())
        if name in self.failing:
            self.failures[name] += 1
            return web.Response(status=500, text="down")
        now = time.time()
        self.receipts.append(Receipt(name, body["id"], request.headers["webhook-id"], now, body["message"]["at"]))
        self.changed.set()
        if name in self.gated:
            await self.gate.wait()
        if delay := self.delays.get(name):
            await asyncio.sleep(delay)
        return web.Response(text="ok")

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        """Waits for `condition` over the receipts (checked at each receipt)."""
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"timed out waiting for {what}")
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))

    def of(self, names: set[str], since: float = 0.0) -> list[Receipt]:
        return [r for r in self.receipts if r.endpoint in names and r.at >= since]


# -- the fleet ------------------------------------------------------------------------------------


class Fleet:
    """The embedded broker, and registry, sender and matcher as processes, on fresh databases."""

    def __init__(self, folder: Path, database_urls: dict[str, str], **settings: str) -> None:
        self.folder = folder
        self.broker = EmbeddedBroker(port=free_port())
        registry = f"127.0.0.1:{free_port()}"
        self.sender_address = f"127.0.0.1:{free_port()}"
        matcher = f"127.0.0.1:{free_port()}"
        self.env = {
            "HOOKS_KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "HOOKS_REGISTRY_LISTEN_ADDRESS": registry,
            "HOOKS_REGISTRY_TARGET": registry,
            "HOOKS_SENDER_LISTEN_ADDRESS": self.sender_address,
            "HOOKS_SENDER_TARGET": self.sender_address,
            "HOOKS_MATCHER_LISTEN_ADDRESS": matcher,
            "HOOKS_MATCHER_TARGET": matcher,
            "HOOKS_REGISTRY_DATABASE_URL": f"sqlite:///{folder / 'registry.db'}",
            "HOOKS_SENDER_DATABASE_URL": f"sqlite:///{folder / 'sender.db'}",
            "HOOKS_SENDER_ALLOWED_NETWORKS": "127.0.0.0/8",
            "HOOKS_SENDER_RETRY_SCHEDULE": "100ms,200ms,400ms",
            "HOOKS_SENDER_CONCURRENCY": str(SENDER_CONCURRENCY),
            "HOOKS_MATCHER_SESSION_TIMEOUT_MS": "6000",
            "HOOKS_MATCHER_MAX_BACKOFF_SECONDS": "1",
            "HOOKS_LOG_LEVEL": "warning",
            "HOOKS_SHUTDOWN_GRACE_SECONDS": "2",
            **database_urls,
            **settings,
        }
        self.registry = ServiceProcess("registry", self.env, folder)
        self.sender = ServiceProcess("sender", self.env, folder)
        self.matcher = ServiceProcess("matcher", self.env, folder)
        self.channel: grpc.aio.Channel | None = None

    async def start(self) -> Fleet:
        await asyncio.to_thread(self.broker.start, 30.0, str(self.folder / "broker.log"))
        await asyncio.to_thread(
            ensure_topics, {"bootstrap.servers": self.broker.bootstrap_servers}, [OUTBOX, "hooks.outbox.dlq"], 4
        )
        await self.registry.start()
        await self.sender.start()
        await self.matcher.start()
        self.channel = grpc.aio.insecure_channel(self.env["HOOKS_REGISTRY_TARGET"])
        await applications_pb2_grpc.ApplicationServiceStub(self.channel).RegisterApplication(
            applications_pb2.RegisterApplicationRequest(
                application=applications_pb2.Application(
                    name=APPLICATION,
                    title="Benchmark",
                    event_types=[applications_pb2.EventType(id=EVENT_TYPE, title="Tick")],
                )
            )
        )
        return self

    async def stop(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        for service in (self.matcher, self.sender, self.registry):
            await asyncio.to_thread(service.stop)
        await asyncio.to_thread(self.broker.stop)

    async def restart_sender(self) -> float:
        """Starts a new sender in the killed one's place; returns the seconds it took to serve."""
        started = time.monotonic()
        self.sender = await ServiceProcess("sender", self.env, self.folder).start()
        return time.monotonic() - started

    async def subscribe(self, account: str, names: list[str], receiver: Receiver, **endpoint_fields) -> None:
        """Webhook endpoints `names` for the account, and one filter triggering them all."""
        assert self.channel is not None
        metadata = identity_metadata(account)
        endpoints = endpoints_pb2_grpc.EndpointServiceStub(self.channel)
        ids = []
        for name in names:
            endpoint = endpoints_pb2.Endpoint(
                name=name,
                type=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK,
                target=receiver.url(name),
                enabled=True,
                **endpoint_fields,
            )
            created = await endpoints.CreateEndpoint(
                endpoints_pb2.CreateEndpointRequest(endpoint=endpoint), metadata=metadata
            )
            ids.append(created.endpoint.id)
        await filters_pb2_grpc.FilterServiceStub(self.channel).CreateFilter(
            filters_pb2.CreateFilterRequest(filter=filters_pb2.Filter(name="all", enabled=True, endpoint_ids=ids)),
            metadata=metadata,
        )

    async def subscribe_many(self, accounts: dict[str, list[str]], receiver: Receiver) -> None:
        """`subscribe` for each account, 32 at a time."""
        items = list(accounts.items())
        for start in range(0, len(items), 32):
            await asyncio.gather(*(self.subscribe(a, names, receiver) for a, names in items[start : start + 32]))

    async def publish(self, accounts: list[str]) -> tuple[list[str], float]:
        """One message per item of `accounts` (to that account), published with hooks_client in that
        order; returns their ids and when publishing began."""
        return await asyncio.to_thread(self._publish, accounts)

    def _publish(self, accounts: list[str]) -> tuple[list[str], float]:
        ids: list[str] = []
        started = time.time()
        with Publisher(
            bootstrap_servers=self.broker.bootstrap_servers, config={"linger.ms": 2, "log_level": 0}
        ) as publisher:
            futures = []
            for number, account in enumerate(accounts):
                message_id = str(uuid.uuid4())
                ids.append(message_id)
                futures.append(
                    publisher.submit(
                        id=message_id,
                        application=APPLICATION,
                        event_type=EVENT_TYPE,
                        account_id=account,
                        message={"n": number, "at": time.time()},
                    )  # fmt: skip
                )
        failed = [f.exception() for f in futures if f.exception()]
        if failed:
            raise RuntimeError(f"publishing failed: {failed[:3]}")
        return ids, started

    async def handed_over(self, count: int, timeout: float = TIMEOUT) -> None:
        """Waits until the matcher has committed `count` messages (each stored by the sender)."""
        config = {"bootstrap.servers": self.broker.bootstrap_servers}
        deadline = time.monotonic() + timeout
        while sum((await asyncio.to_thread(committed_offsets, config, GROUP, OUTBOX)).values()) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the matcher did not hand over {count} messages in time")
            await asyncio.sleep(0.2)

    def sender_cpu(self) -> float:
        assert self.sender.process is not None
        return cpu_seconds(self.sender.process.pid)


# -- the scenarios --------------------------------------------------------------------------------


async def backlog(fleet: Fleet, receiver: Receiver) -> dict:
    receiver.delays["a"] = 2.0
    await fleet.subscribe("account-a", ["a"], receiver)
    await fleet.subscribe("account-b", ["b"], receiver)
    await fleet.publish(["account-a"] * 5000)
    await fleet.handed_over(5000)
    _, started = await fleet.publish(["account-b"] * 500)
    await receiver.until(lambda: len(receiver.of({"b"})) >= 500, "B's 500")
    b = receiver.of({"b"})
    return {
        "B's 500 all arrived after (s)": max(r.at for r in b) - started,
        "A's arrived meanwhile": len(receiver.of({"a"})),
    }


async def kill_pending(fleet: Fleet, receiver: Receiver) -> dict:
    receiver.gated.add("k")
    await fleet.subscribe("account-k", ["k"], receiver)
    await fleet.publish(["account-k"] * 5000)
    await fleet.handed_over(5000)
    fleet.sender.kill()
    killed = time.time()
    on_the_wire = len(receiver.receipts)
    receiver.gate.set()
    restart = await fleet.restart_sender()
    await receiver.until(lambda: len(receiver.receipts) > on_the_wire, "the first delivery after the kill")
    first = receiver.receipts[on_the_wire].at - killed
    await receiver.until(lambda: len({r.message_id for r in receiver.receipts}) >= 5000, "all 5,000")
    return {
        "on the wire at the kill": on_the_wire,
        "new sender serving after (s)": restart,
        "first delivery after the kill (s)": first,
        "all delivered after the kill (s)": max(r.at for r in receiver.receipts) - killed,
        "duplicates": len(receiver.receipts) - 5000,
    }


async def kill_midstream(fleet: Fleet, receiver: Receiver) -> dict:
    await fleet.subscribe("account-m", ["m"], receiver)
    publishing = asyncio.create_task(fleet.publish(["account-m"] * 2000))
    await receiver.until(lambda: len(receiver.receipts) >= 500, "500 deliveries")
    fleet.sender.kill()
    killed_after = len(receiver.receipts)
    await fleet.restart_sender()
    await publishing
    await receiver.until(lambda: len({r.message_id for r in receiver.receipts}) >= 2000, "all 2,000")
    times = sorted(r.at for r in receiver.receipts)
    return {
        "killed after": killed_after,
        "duplicates": len(receiver.receipts) - 2000,
        "longest gap between receipts (s)": max(b - a for a, b in zip(times, times[1:], strict=False)),
    }


async def rate_limit(fleet: Fleet, receiver: Receiver) -> dict:
    limit = endpoints_pb2.RateLimit(requests=10, period=endpoints_pb2.RATE_LIMIT_PERIOD_SECOND)
    await fleet.subscribe("account-r", ["r"], receiver, rate_limit=limit)
    await fleet.publish(["account-r"] * 700)
    await receiver.until(lambda: len(receiver.receipts) >= 700, "all 700")
    times = sorted(r.at for r in receiver.receipts)[10:]  # after the first second's worth (the bucket)
    return {
        "seconds measured": times[-1] - times[0],
        "requests/s (limit 10)": (len(times) - 1) / (times[-1] - times[0]),
    }


def throughput(
    accounts: int, endpoints: int, messages: int, failing: int = 0
) -> Callable[[Fleet, Receiver], Awaitable[dict]]:
    """`messages` published round-robin over `accounts` accounts of `endpoints` endpoints each; the
    first `failing` accounts' endpoints answer 500. Figures for the endpoints that answer."""

    async def run(fleet: Fleet, receiver: Receiver) -> dict:
        names = {f"t{a}": [f"t{a}e{e}" for e in range(endpoints)] for a in range(accounts)}
        await fleet.subscribe_many(names, receiver)
        for account in list(names)[:failing]:
            receiver.failing.update(names[account])
        healthy = {name for account in list(names)[failing:] for name in names[account]}
        order = [f"t{n % accounts}" for n in range(messages)]
        expected = sum(len(names[a]) for a in order if names[a][0] in healthy)
        cpu = fleet.sender_cpu()
        _, started = await fleet.publish(order)
        await receiver.until(lambda: len(receiver.receipts) >= expected, f"{expected} deliveries")
        last = max(r.at for r in receiver.receipts)
        latencies = sorted(r.at - r.produced_at for r in receiver.receipts)
        return {
            "deliveries": expected,
            "deliveries/s": expected / (last - started),
            "p99 latency (s)": latencies[int(len(latencies) * 0.99) - 1],
            "sender CPU ms per delivery": (fleet.sender_cpu() - cpu) * 1000 / expected,
            "failed attempts": sum(receiver.failures.values()),
        }

    return run


SCENARIOS: dict[str, Callable[[Fleet, Receiver], Awaitable[dict]]] = {
    "backlog": backlog,
    "kill-pending": kill_pending,
    "kill-midstream": kill_midstream,
    "rate-limit": rate_limit,
    "single": throughput(1, 1, 20_000),
    "pair": throughput(1, 2, 20_000),
    "tenants": throughput(1000, 2, 20_000),
    "fanout": throughput(1, 50, 1_000),
    "healthy": throughput(100, 1, 10_000),
    "failing": throughput(100, 1, 10_000, failing=30),
}
#: What each ratio compares: (scenario, figure) over (scenario, figure), and the target.
RATIOS = [
    ("tenants / pair", ("tenants", "pair"), 0.85),
    ("failing / healthy (the healthy 70)", ("failing", "healthy"), 0.8),
]


async def run_scenario(name: str, database: str) -> dict:
    receiver = await Receiver().start()
    try:
        async with databases(database) as urls:
            with tempfile.TemporaryDirectory(prefix=f"hooks-bench-{name}-") as tmp:
                fleet = Fleet(Path(tmp), urls)
                try:
                    await fleet.start()
                    return await SCENARIOS[name](fleet, receiver)
                finally:
                    receiver.gate.set()
                    await fleet.stop()
    finally:
        await receiver.runner.cleanup()


async def main(names: list[str], database: str) -> None:
    print(f"load average before: {load()} on {os.cpu_count()} cores; {database}")
    results = {}
    for name in names:
        print(f"{name}...", flush=True)
        results[name] = await run_scenario(name, database)
        figures = "; ".join(
            f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
            for key, value in results[name].items()
        )
        print(f"  {figures}  (load {load()})", flush=True)
    for label, (a, b), target in RATIOS:
        if a in results and b in results:
            ratio = results[a]["deliveries/s"] / results[b]["deliveries/s"]
            print(f"{label}: {ratio:.2f} (target >= {target})")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, of: " + ", ".join(SCENARIOS))
    arguments = parser.parse_args()
    unknown = set(arguments.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    asyncio.run(main(arguments.scenarios.split(","), arguments.database))
