"""Metrics are for operators: the gateway's public port has no /metrics (its metrics port has), and
/metrics listeners bind to loopback unless HOOKS_METRICS_ADDRESS says otherwise (k8s sets 0.0.0.0 for
Prometheus)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import httpx

from gateway.app import build_app
from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from services.common.broker import free_port
from tests.helpers.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on TCP `port` (Linux's /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(raw)))
    return found


async def test_the_gateway_serves_metrics_on_its_metrics_port_and_not_on_the_public_one():
    settings = GatewaySettings()
    assert settings.metrics_address == "127.0.0.1"
    server = GatewayServer(build_app(settings), shutdown_grace_seconds=0.5)
    port = await server.start("127.0.0.1:0", metrics_address=f"{settings.metrics_address}:0")
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            public = await client.get(f"http://127.0.0.1:{port}/metrics")
            assert public.status_code == 404
            assert "hooks_gateway" not in public.text
            metrics = await client.get(f"http://127.0.0.1:{server.metrics_port}/metrics")
            assert metrics.status_code == 200
            assert 'hooks_gateway_requests_total{method="GET",route="/healthz",status="200"} 1.0' in metrics.text
            assert 'route="unmatched",status="404"} 1.0' in metrics.text  # the refused /metrics itself
        assert listening_addresses(server.metrics_port) == {"127.0.0.1"}
    finally:
        await server.stop()


async def test_a_service_binds_its_metrics_to_loopback_by_default_and_where_told_otherwise(tmp_path):
    """`python -m services.registry` as `make run` starts it: /metrics on 127.0.0.1 only; with
    HOOKS_METRICS_ADDRESS=0.0.0.0 (the manifests' value) on every interface."""
    for address, expected in ((None, {"127.0.0.1"}), ("0.0.0.0", {"0.0.0.0"})):
        metrics_port = free_port()
        env = {
            **os.environ,
            "HOOKS_REGISTRY_LISTEN_ADDRESS": f"127.0.0.1:{free_port()}",
            "HOOKS_REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / f'registry-{metrics_port}.db'}",
            "HOOKS_METRICS_PORT": str(metrics_port),
        }
        env.pop("HOOKS_METRICS_ADDRESS", None)
        if address:
            env["HOOKS_METRICS_ADDRESS"] = address
        process = subprocess.Popen(
            [sys.executable, "-m", "services.registry"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await eventually(
                lambda port=metrics_port, process=process: listening_addresses(port) or process.poll() is not None,
                60,
                "the registry's /metrics listening",
            )
            assert process.poll() is None, "the registry exited"
            assert listening_addresses(metrics_port) == expected
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert answer.status_code == 200 and "# HELP" in answer.text
        finally:
            process.terminate()
            await asyncio.to_thread(process.wait, 30)
