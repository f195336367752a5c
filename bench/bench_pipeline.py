"""The whole pipeline's throughput and latency, against the bare minimum the same machine can do.

    .venv/bin/python bench/bench_pipeline.py [--sizes 100,1000,10000] [--schema]

Like the original's bin/benchmark. It starts the system the way `make run` does (`hooks run` with
its embedded broker, SQLite databases in a temporary folder, the services as separate processes so they
use every core), registers an application, a webhook endpoint and a filter, and a local aiohttp receiver.
For each size it publishes that many messages with hooks_client.Publisher and measures:

- deliveries/s: from the first message produced to the last webhook received;
- p50/p99 latency: from a message's produce time (carried in the message) to its receipt.

Then the bare minimum, on the same broker and receiver: one process that only consumes the messages and
POSTs each to the receiver with aiohttp, 64 in flight; no validation, routing, queue, signing or retries.
The ratio pipeline/bare says what hooks' guarantees cost (target: at least 0.5 at 10,000).

With --schema the bench event type is registered with TICK_SCHEMA, a small JSON Schema its messages
conform to, so that the matcher checks every message against it: compare the figures with and without.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402

from hooks.registry.v1 import (  # noqa: E402
    applications_pb2,
    applications_pb2_grpc,
    endpoints_pb2,
    endpoints_pb2_grpc,
    filters_pb2,
    filters_pb2_grpc,
)
from hooks_client import Publisher  # noqa: E402
from services.common.broker import ensure_topics, free_port  # noqa: E402
from services.common.identity import identity_metadata  # noqa: E402

ACCOUNT = "bench"
APPLICATION = "bench"
EVENT_TYPE = "tick"
IN_FLIGHT = 64
STARTUP_TIMEOUT = 180.0
RUN_TIMEOUT = 600.0
#: The bench event type's schema with --schema: what every bench message is (see `produce`).
TICK_SCHEMA = {
    "type": "object",
    "required": ["number", "produced_at"],
    "properties": {"number": {"type": "integer"}, "produced_at": {"type": "number"}},
    "additionalProperties": False,
}


# -- the receiver ---------------------------------------------------------------------------------


@dataclass
class Run:
    """One measured run: every receipt while it lasts (id -> received at, produced at); the ids it
    waits for are known once they are all produced."""

    receipts: dict[str, tuple[float, float]] = field(default_factory=dict)
    expected: set[str] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self) -> None:
        if self.expected is not None and self.expected.issubset(self.receipts):
            self.done.set()


class Receiver:
    """One aiohttp server; POST /pipeline receives the webhooks, POST /bare the bare loop's requests."""

    def __init__(self) -> None:
        self.run: Run | None = None
        self.port = free_port()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{kind}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, backlog=1024).start()

    async def handle(self, request: web.Request) -> web.Response:
        now = time.time()
        body = json.loads(await request.read())
        run = self.run
        if run is not None and isinstance(body.get("message"), dict):
            run.receipts.setdefault(body.get("id"), (now, float(body["message"].get("produced_at", now))))
            run.check()
        return web.Response(text="ok")


# -- producing ------------------------------------------------------------------------------------


def produce(bootstrap: str, topic: str, count: int) -> tuple[set[str], float]:
    """`count` messages published with hooks_client (as applications do), each carrying its produce
    time; returns ids and start time."""
    ids: set[str] = set()
    started = time.time()
    with Publisher(bootstrap_servers=bootstrap, topic=topic, config={"linger.ms": 2, "log_level": 0}) as publisher:
        futures = []
        for number in range(count):
            message_id = str(uuid.uuid4())
            futures.append(
                publisher.submit(
                    id=message_id,
                    application=APPLICATION,
                    event_type=EVENT_TYPE,
                    level="",
                    account_id=ACCOUNT,
                    message={"number": number, "produced_at": time.time()},
                )  # fmt: skip
            )
            ids.add(message_id)
    failures = [str(f.exception()) for f in futures if f.exception()]
    if failures:
        raise RuntimeError(f"producing failed: {failures[:3]}")
    return ids, started


async def measure(receiver: Receiver, bootstrap: str, topic: str, count: int) -> dict:
    run = Run()
    receiver.run = run
    try:
        ids, started = await asyncio.to_thread(produce, bootstrap, topic, count)
        run.expected = ids
        run.check()
        await asyncio.wait_for(run.done.wait(), RUN_TIMEOUT)
    except TimeoutError:
        got = len(ids & run.receipts.keys())
        raise RuntimeError(f"only {got} of {count} received within {RUN_TIMEOUT:.0f}s") from None
    finally:
        receiver.run = None
    receipts = [run.receipts[i] for i in ids]
    last = max(received for received, _ in receipts)
    latencies = sorted((received - produced) * 1000 for received, produced in receipts)
    return {
        "rate": count / (last - started),
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


# -- the bare minimum -----------------------------------------------------------------------------


async def bare_worker(bootstrap: str, topic: str, url: str) -> None:
    """Consume and POST, IN_FLIGHT at once; offsets committed automatically. Runs in its own process."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-bare",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "log_level": 0,
        }
    )
    consumer.subscribe([topic])
    slots = asyncio.Semaphore(IN_FLIGHT)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async with ClientSession(connector=TCPConnector(limit=IN_FLIGHT), timeout=ClientTimeout(total=15)) as session:

        async def post(body: bytes) -> None:
            try:
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as response:
                    await response.read()
            finally:
                slots.release()

        print("ready", flush=True)
        while not stop.is_set():
            messages = await asyncio.to_thread(consumer.consume, 500, 0.05)
            for message in messages:
                if message.error() is None:
                    await slots.acquire()
                    asyncio.create_task(post(message.value()))
    consumer.close()


# -- the system -----------------------------------------------------------------------------------


class System:
    """`hooks run` on free ports, its broker embedded, its databases in a temporary folder."""

    def __init__(self, data_dir: Path, database_urls: dict[str, str], *, schema: dict | None = None) -> None:
        """`schema`: the bench event type's JSON Schema, or None for none."""
        self.data_dir = data_dir
        self.schema = schema
        self.bootstrap = f"127.0.0.1:{free_port()}"
        self.registry = f"127.0.0.1:{free_port()}"
        self.env = {
            **os.environ,
            "HOOKS_RUN_BROKER": "embedded",
            "HOOKS_RUN_DATA_DIR": str(data_dir),
            "HOOKS_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "HOOKS_REGISTRY_LISTEN_ADDRESS": self.registry,
            "HOOKS_SENDER_LISTEN_ADDRESS": f"127.0.0.1:{free_port()}",
            "HOOKS_MATCHER_LISTEN_ADDRESS": f"127.0.0.1:{free_port()}",
            "HOOKS_METRICS_PORT": "0",
            "HOOKS_LOG_LEVEL": "warning",
            "HOOKS_MATCHER_SESSION_TIMEOUT_MS": "6000",
            **database_urls,
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log = open(self.data_dir / "hooks-run.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "run", "--no-gateway"],
            cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + STARTUP_TIMEOUT
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.write(line)
            if "hooks is up" in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("hooks run did not come up")
        else:
            raise RuntimeError(f"hooks run exited: see {self.data_dir / 'hooks-run.log'}")
        # Keep draining its output so it never blocks on a full pipe.

        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process and self.process.stdout
        for line in self.process.stdout:
            self.log.write(line)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()

    async def configure(self, url: str) -> None:
        """The bench application, a webhook endpoint to the receiver, and a filter for it."""
        metadata = identity_metadata(ACCOUNT)
        event_type = applications_pb2.EventType(id=EVENT_TYPE, title="Tick")
        if self.schema is not None:
            event_type.schema.update(self.schema)
        async with grpc.aio.insecure_channel(self.registry) as channel:
            await applications_pb2_grpc.ApplicationServiceStub(channel).RegisterApplication(
                applications_pb2.RegisterApplicationRequest(
                    application=applications_pb2.Application(
                        name=APPLICATION, title="Benchmark", event_types=[event_type]
                    )
                )
            )
            endpoint = (
                await endpoints_pb2_grpc.EndpointServiceStub(channel).CreateEndpoint(
                    endpoints_pb2.CreateEndpointRequest(
                        endpoint=endpoints_pb2.Endpoint(
                            name="receiver", type=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK, target=url, enabled=True
                        )
                    ),
                    metadata=metadata,
                )
            ).endpoint
            await filters_pb2_grpc.FilterServiceStub(channel).CreateFilter(
                filters_pb2.CreateFilterRequest(
                    filter=filters_pb2.Filter(name="all", enabled=True, endpoint_ids=[endpoint.id])
                ),
                metadata=metadata,
            )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_pids(parent: int) -> dict[str, int]:
    """The services `hooks run` started: name -> pid."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if ppid == parent and b"-m" in cmdline:
            found[cmdline[cmdline.index(b"-m") + 1].decode().rsplit(".", 1)[-1]] = int(stat.parent.name)
    return found


async def measure_with_cpu(receiver: Receiver, bootstrap: str, topic: str, count: int, pids: dict[str, int]) -> dict:
    """`measure`, plus the CPU milliseconds each process spent per message during it."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = await measure(receiver, bootstrap, topic, count)
    result["cpu"] = {name: (cpu_seconds(pid) - before[name]) * 1000 / count for name, pid in pids.items()}
    return result


async def measure_sizes(system: System, receiver: Receiver, sizes: list[int]) -> dict[int, dict[str, dict]]:
    """Starts the system and the bare loop, warms both up, and measures each size on each."""
    results: dict[int, dict[str, dict]] = {}
    bare: subprocess.Popen | None = None
    try:
        await asyncio.to_thread(system.start)
        assert system.process is not None
        pids = service_pids(system.process.pid)
        await system.configure(f"http://127.0.0.1:{receiver.port}/pipeline")
        await asyncio.to_thread(ensure_topics, {"bootstrap.servers": system.bootstrap}, ["bench.bare"], 4)
        bare = subprocess.Popen(
            [sys.executable, __file__, "--bare-worker", system.bootstrap, "bench.bare",
             f"http://127.0.0.1:{receiver.port}/bare"],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert bare.stdout is not None
        await asyncio.to_thread(bare.stdout.readline)

        print("warming up (consumer groups joining)...", flush=True)
        await measure(receiver, system.bootstrap, "hooks.outbox", 20)
        await measure(receiver, system.bootstrap, "bench.bare", 20)

        for size in sizes:
            print(f"{size} messages...", flush=True)
            results[size] = {
                "pipeline": await measure_with_cpu(receiver, system.bootstrap, "hooks.outbox", size, pids),
                "bare": await measure_with_cpu(receiver, system.bootstrap, "bench.bare", size, {"bare": bare.pid}),
            }
        return results
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait(10)
        await asyncio.to_thread(system.stop)


async def main(sizes: list[int], database: str, *, schema: bool = False) -> None:
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"bench event type: {'with a JSON Schema (every message checked)' if schema else 'without a schema'}")
    receiver = Receiver()
    await receiver.start()
    try:
        async with databases(database) as urls:
            with tempfile.TemporaryDirectory(prefix="hooks-bench-") as tmp:
                print(f"starting hooks run (broker, registry, sender, matcher; {database})...", flush=True)
                system = System(Path(tmp), urls, schema=TICK_SCHEMA if schema else None)
                results = await measure_sizes(system, receiver, sizes)
    finally:
        await receiver.runner.cleanup()

    print()
    print(f"{'messages':>9} | {'pipeline/s':>10} {'p50 ms':>8} {'p99 ms':>8} | "
          f"{'bare/s':>8} {'p50 ms':>8} {'p99 ms':>8} | {'ratio':>5}")  # fmt: skip
    print("-" * 83)
    for size, result in results.items():
        p, b = result["pipeline"], result["bare"]
        print(f"{size:>9} | {p['rate']:>10.0f} {p['p50']:>8.0f} {p['p99']:>8.0f} | "
              f"{b['rate']:>8.0f} {b['p50']:>8.0f} {b['p99']:>8.0f} | {p['rate'] / b['rate']:>5.2f}")  # fmt: skip
    print()
    print("CPU milliseconds per message, by process:")
    for size, result in results.items():
        spent = {**result["pipeline"]["cpu"], **result["bare"]["cpu"]}
        print(f"{size:>9} | " + "  ".join(f"{name} {ms:.2f}" for name, ms in spent.items()))
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


@contextlib.asynccontextmanager
async def databases(kind: str):
    """The registry's and the sender's database URLs: SQLite files (hooks run's default), or fresh
    PostgreSQL databases, dropped afterwards."""
    if kind == "sqlite":
        yield {}
        return
    import asyncpg

    admin = os.environ.get("HOOKS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    names = {svc: f"hooks_bench_{svc}_{uuid.uuid4().hex[:8]}" for svc in ("registry", "sender")}

    async def execute(*statements: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    await execute(*(f'CREATE DATABASE "{name}"' for name in names.values()))
    base = admin.rsplit("/", 1)[0]
    try:
        yield {f"HOOKS_{svc.upper()}_DATABASE_URL": f"{base}/{name}" for svc, name in names.items()}
    finally:
        await execute(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names.values()))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--bare-worker":
        asyncio.run(bare_worker(*sys.argv[2:]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated message counts")
    parser.add_argument(
        "--database", choices=["sqlite", "postgresql"], default="sqlite",
        help="the registry's and sender's databases: SQLite files (as `make run`) or PostgreSQL on 127.0.0.1",
    )  # fmt: skip
    parser.add_argument(
        "--schema", action="store_true",
        help="register the bench event type with a small JSON Schema (TICK_SCHEMA) the matcher checks each message against",
    )  # fmt: skip
    arguments = parser.parse_args()
    asyncio.run(main([int(size) for size in arguments.sizes.split(",")], arguments.database, schema=arguments.schema))
