"""What every service inherits from services/common: health, reflection, drain, identity, errors."""

from __future__ import annotations

import asyncio
import base64
import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common.identity import IdentityError, encode_identity, parse_identity
from services.common.server import GrpcServer
from services.common.settings import CommonSettings, KafkaSettings


async def _list_services(channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for response in stub.ServerReflectionInfo(requests()):
        return [s.name for s in response.list_services_response.service]
    return []


async def test_server_serves_health_and_reflection_then_drains():
    server = GrpcServer("probe", CommonSettings(shutdown_grace_seconds=1), [])
    port = await server.start("127.0.0.1:0")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(health_pb2.HealthCheckRequest())
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        services = await _list_services(channel)
        assert "grpc.health.v1.Health" in services
        assert "grpc.reflection.v1alpha.ServerReflection" in services

        watch = health.Watch(health_pb2.HealthCheckRequest())
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(server.stop())
        # Balancers see NOT_SERVING before the server goes away.
        second = await asyncio.wait_for(watch.read(), 5)
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await stopping


def test_identity_round_trip_and_rejections():
    assert parse_identity(encode_identity("acct-1")) == "acct-1"
    garbled = [
        None,
        "",
        "not base64!",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(json.dumps({"identity": {}}).encode()).decode(),
        base64.b64encode(json.dumps({"identity": {"account_number": ""}}).encode()).decode(),
        base64.b64encode(json.dumps([1, 2]).encode()).decode(),
        "A" * 10_000,
    ]
    for value in garbled:
        with pytest.raises(IdentityError):
            parse_identity(value)


def test_kafka_settings_pass_sasl_and_tls_through(monkeypatch):
    monkeypatch.setenv("HOOKS_KAFKA_BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv("HOOKS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("HOOKS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("HOOKS_KAFKA_SASL_USERNAME", "hooks")
    monkeypatch.setenv("HOOKS_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("HOOKS_KAFKA_SSL_CA_LOCATION", "/etc/kafka/ca.pem")
    config = KafkaSettings().client_config()
    assert config == {
        "bootstrap.servers": "k1:9093,k2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "hooks",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/kafka/ca.pem",
    }


def test_the_embedded_broker_dies_with_the_process_that_started_it():
    """A test run or `hooks run` killed with -9 leaves no broker behind."""
    import os
    import subprocess
    import sys
    import time

    code = (
        "from services.common.broker import EmbeddedBroker; import time; "
        "b = EmbeddedBroker().start(); print(b.process.pid, flush=True); time.sleep(120)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    broker_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(broker_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(broker_pid, 9)
    raise AssertionError("the broker outlived the process that started it")
