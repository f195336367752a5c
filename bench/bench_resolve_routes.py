"""ResolveRoutes under load: 10,000 accounts x 5 filters, the real server, a real channel.

    .venv/bin/python bench/bench_resolve_routes.py                       # SQLite in a temp dir
    .venv/bin/python bench/bench_resolve_routes.py --database-url postgresql://postgres@127.0.0.1:5432/bench

Loads the data with bulk inserts, starts `python -m services.registry` as its own process (so the
server and this client do not share a GIL), then calls ResolveRoutes from many concurrent tasks for
--seconds, over random accounts and events, and prints calls/s with p50/p99 latency. A first pass
calls once per account, so every call misses the route cache (the cost of a cold start); the
measured phase then runs on a warm cache.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "gen"))

from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from hooks.registry.v1 import applications_pb2, applications_pb2_grpc, routing_pb2, routing_pb2_grpc  # noqa: E402
from services.common.channels import channel  # noqa: E402
from services.common.db import create_engine, upgrade  # noqa: E402
from services.registry import models  # noqa: E402
from services.registry.server import MIGRATIONS, VERSION_TABLE  # noqa: E402
from services.registry.signing_secrets import generate_secret  # noqa: E402

APP = "bench"
EVENTS = [("alert", "low"), ("alert", "high"), ("report", "")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def load(url: str, accounts: int, filters_per_account: int) -> float:
    """Bulk-inserts the accounts' endpoints and filters; returns seconds taken."""
    started = time.perf_counter()
    engine = create_engine(url)
    now = models.utcnow()
    endpoints, filters, f_apps, f_types, f_levels, f_endpoints = [], [], [], [], [], []
    for a in range(accounts):
        account = f"acct-{a}"
        ids = [str(uuid.uuid4()) for _ in range(2)]
        for i, endpoint_id in enumerate(ids):
            endpoints.append(
                dict(
                    id=endpoint_id,
                    account_id=account,
                    name=f"endpoint-{i}",
                    description="",
                    type="webhook",
                    target=f"https://hooks.example.com/{account}/{i}",
                    enabled=True,
                    headers={},
                    ca_certificate="",
                    secret=generate_secret(),
                    disabled_reason="",
                    create_time=now,
                    update_time=now,
                )
            )
        for f in range(filters_per_account):
            filter_id = str(uuid.uuid4())
            filters.append(
                dict(
                    id=filter_id,
                    account_id=account,
                    name=f"filter-{f}",
                    enabled=f != 4,
                    create_time=now,
                    update_time=now,
                )
            )
            kind = f % 5
            if kind == 1:
                f_apps.append(dict(filter_id=filter_id, position=0, application=APP))
            elif kind == 2:
                f_types.append(dict(filter_id=filter_id, position=0, application=APP, event_type="alert"))
            elif kind == 3:
                f_levels.append(
                    dict(filter_id=filter_id, position=0, application=APP, event_type="alert", level="high")
                )
            f_endpoints.append(dict(filter_id=filter_id, endpoint_id=ids[f % 2], position=0))
    async with engine.begin() as connection:
        for table, rows in [
            (models.Endpoint, endpoints),
            (models.Filter, filters),
            (models.FilterApplication, f_apps),
            (models.FilterEventType, f_types),
            (models.FilterLevel, f_levels),
            (models.FilterEndpoint, f_endpoints),
        ]:
            for i in range(0, len(rows), 5000):
                await connection.execute(insert(table), rows[i : i + 5000])
    await engine.dispose()
    return time.perf_counter() - started


async def hammer(
    target: str, accounts: int, seconds: float, concurrency: int, sweep: bool = False
) -> tuple[float, list[float], int]:
    """Calls ResolveRoutes from `concurrency` tasks for `seconds`: over random accounts, or with
    `sweep` over every account once, in order (each call then misses the route cache)."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    channels = [channel(target) for _ in range(2)]
    stubs = [routing_pb2_grpc.RoutingServiceStub(ch) for ch in channels]
    order = iter(range(accounts))

    async def worker(n: int) -> None:
        nonlocal errors
        stub = stubs[n % len(stubs)]
        rng = random.Random(n)
        while time.perf_counter() < deadline:
            if sweep:
                account = next(order, None)
                if account is None:
                    return
            else:
                account = rng.randrange(accounts)
            event_type, level = rng.choice(EVENTS)
            request = routing_pb2.ResolveRoutesRequest(
                account_id=f"acct-{account}", application=APP, event_type=event_type, level=level
            )
            began = time.perf_counter()
            try:
                response = await stub.ResolveRoutes(request, timeout=10)
                assert response.registered and response.routes
            except Exception:  # noqa: BLE001 - counted, reported
                errors += 1
                continue
            latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    for ch in channels:
        await ch.close()
    return len(latencies) / elapsed, latencies, errors


def report(label: str, rate: float, latencies: list[float], errors: int) -> None:
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"{label:<28} {rate:8.0f} calls/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   ({len(latencies)} calls, {errors} errors)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--filters", type=int, default=5, help="filters per account")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench-registry.db"
        await asyncio.to_thread(upgrade, url, MIGRATIONS, VERSION_TABLE)
        took = await load(url, args.accounts, args.filters)
        print(
            f"loaded {args.accounts} accounts x {args.filters} filters (2 endpoints each) in {took:.1f}s "
            f"on {url.split(':')[0]}"
        )

        port = free_port()
        env = {
            **os.environ,
            "HOOKS_REGISTRY_LISTEN_ADDRESS": f"127.0.0.1:{port}",
            "HOOKS_REGISTRY_DATABASE_URL": url,
            "HOOKS_LOG_LEVEL": "warning",
        }
        server = subprocess.Popen([sys.executable, "-m", "services.registry"], cwd=ROOT, env=env)
        try:
            target = f"127.0.0.1:{port}"
            async with channel(target) as ch:
                await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=60
                )
                app = applications_pb2.Application(name=APP, title="Bench")
                app.event_types.add(
                    id="alert",
                    title="Alert",
                    levels=[
                        applications_pb2.Level(id="low", title="Low"),
                        applications_pb2.Level(id="high", title="High"),
                    ],
                )
                app.event_types.add(id="report", title="Report")
                await applications_pb2_grpc.ApplicationServiceStub(ch).RegisterApplication(
                    applications_pb2.RegisterApplicationRequest(application=app)
                )
            report("first call per account", *(await hammer(target, args.accounts, 600, args.concurrency, sweep=True)))
            report("ResolveRoutes, warm cache", *(await hammer(target, args.accounts, args.seconds, args.concurrency)))
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    asyncio.run(main())
