"""`python -m gateway`: serves on HOOKS_GATEWAY_LISTEN_ADDRESS, its metrics also on HOOKS_METRICS_PORT,
and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import httpx

from services.common.broker import free_port
from tests.helpers.gateway import ROOT


async def test_python_m_gateway_serves_and_stops_on_sigterm():
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "HOOKS_GATEWAY_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "HOOKS_METRICS_PORT": str(metrics_port),
        "HOOKS_REGISTRY_TARGET": f"127.0.0.1:{free_port()}",  # nobody: readiness says so
        "HOOKS_LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    response = await client.get("/healthz")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the gateway did not start"
                    assert process.returncode is None, (await process.stdout.read()).decode()
                    await asyncio.sleep(0.1)
            assert response.status_code == 200
            document = (await client.get("/api/hooks/v1/openapi.json")).json()
            assert document["paths"]["/api/hooks/v1/endpoints"]["post"]["summary"] == "Creates an endpoint."
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert "hooks.registry.v1.EndpointService" in ready.json()["notServing"]
            metrics = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert 'hooks_gateway_requests_total{method="GET",route="/healthz",status="200"} 1.0' in metrics.text
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
