"""What the gateway costs: the same List call straight over gRPC and through the gateway.

    .venv/bin/python bench/bench_gateway.py [--duration 10] [--concurrency 32] [--endpoints 20]

Starts a real registry (SQLite, in a temporary folder) with some endpoints for one account, and the
gateway, both in this process on free ports; then keeps `concurrency` ListEndpoints calls in flight
for `duration` seconds on each path (in alternating one-second rounds, so the machine's other load
weighs on both alike), and prints calls/s, p50 and p99 for both and their ratio; then the same one
call at a time, where the added p50 is the gateway's own latency.
Targets: the gateway keeps >= 50% of direct gRPC throughput and adds <= 2 ms at p50.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from gateway.app import build_app
from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from hooks.registry.v1 import endpoints_pb2, endpoints_pb2_grpc
from services.common.channels import channel
from services.common.identity import IDENTITY_HEADER, encode_identity, identity_metadata
from services.common.logging import configure_logging
from services.registry.server import build_server
from services.registry.settings import RegistrySettings

ACCOUNT = "bench-account"


async def load(call: Callable[[], Awaitable[None]], concurrency: int, duration: float) -> tuple[float, list[float]]:
    """(calls per second, latencies in seconds) of `concurrency` loops calling for `duration` seconds."""
    latencies: list[float] = []
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def line(name: str, rate: float, latencies: list[float]) -> str:
    return (
        f"  {name:<8} {rate:9.0f} calls/s   p50 {percentile(latencies, 50) * 1000:7.2f} ms"
        f"   p99 {percentile(latencies, 99) * 1000:7.2f} ms   ({len(latencies)} calls)"
    )


async def main(duration: float, concurrency: int, endpoints: int) -> int:
    configure_logging("warning")
    with tempfile.TemporaryDirectory() as tmp:
        registry = await build_server(
            RegistrySettings(registry_database_url=f"sqlite:///{Path(tmp) / 'registry.db'}", shutdown_grace_seconds=1)
        )
        registry_port = await registry.start("127.0.0.1:0")
        target = f"127.0.0.1:{registry_port}"
        gateway = GatewayServer(build_app(GatewaySettings(registry_target=target)), shutdown_grace_seconds=1)
        gateway_port = await gateway.start("127.0.0.1:0")
        grpc_channel = channel(target)
        stub = endpoints_pb2_grpc.EndpointServiceStub(grpc_channel)
        metadata = identity_metadata(ACCOUNT)
        for i in range(endpoints):
            await stub.CreateEndpoint(
                endpoints_pb2.CreateEndpointRequest(
                    endpoint=endpoints_pb2.Endpoint(
                        name=f"endpoint-{i:03d}",
                        type=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK,
                        target=f"https://hooks.example.com/{i}",
                        enabled=True,
                    )
                ),
                metadata=metadata,
            )
        request = endpoints_pb2.ListEndpointsRequest(page_size=endpoints)
        url = f"http://127.0.0.1:{gateway_port}/api/hooks/v1/endpoints?pageSize={endpoints}"
        headers = {IDENTITY_HEADER: encode_identity(ACCOUNT)}
        connector = aiohttp.TCPConnector(limit=concurrency * 2)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def direct() -> None:
                answer = await stub.ListEndpoints(request, metadata=metadata)
                assert len(answer.endpoints) == endpoints

            async def through_gateway() -> None:
                async with http.get(url, headers=headers) as response:
                    body = await response.json()
                    assert response.status == 200 and len(body["endpoints"]) == endpoints

            for call in (direct, through_gateway):  # warm up: connections, caches
                await load(call, 4, 1.0)
            print(f"ListEndpoints ({endpoints} endpoints), registry on SQLite, all in one process (pid {os.getpid()})")
            results = {}
            for in_flight, seconds in ((concurrency, duration), (1, max(duration / 2, 2.0))):
                print(f"{in_flight} in flight, {seconds:.0f} s each (in alternating 1 s rounds):")
                direct_rate, direct_lat = 0.0, []
                gateway_rate, gateway_lat = 0.0, []
                rounds = max(int(seconds), 1)
                # Alternating short rounds: a change in the machine's other load hits both alike.
                for _ in range(rounds):
                    rate, latencies = await load(direct, in_flight, seconds / rounds)
                    direct_rate, direct_lat = direct_rate + rate / rounds, direct_lat + latencies
                    rate, latencies = await load(through_gateway, in_flight, seconds / rounds)
                    gateway_rate, gateway_lat = gateway_rate + rate / rounds, gateway_lat + latencies
                print(line("gRPC", direct_rate, direct_lat))
                print(line("gateway", gateway_rate, gateway_lat))
                added = (percentile(gateway_lat, 50) - percentile(direct_lat, 50)) * 1000
                ratio = gateway_rate / direct_rate
                print(f"  gateway/gRPC throughput {ratio:.0%}   added p50 {added:.2f} ms")
                results[in_flight] = (ratio, added)
        await grpc_channel.close()
        await gateway.stop()
        await registry.stop(1)
    ratio, _ = results[concurrency]
    _, added_alone = results[1]
    ok = ratio >= 0.5 and added_alone <= 2.0
    print(
        f"targets: throughput >= 50% ({ratio:.0%}) and <= 2 ms added at p50 one at a time "
        f"({added_alone:.2f} ms): {'met' if ok else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per path")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    parser.add_argument("--endpoints", type=int, default=20, help="endpoints the listed account has")
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.duration, arguments.concurrency, arguments.endpoints)))
