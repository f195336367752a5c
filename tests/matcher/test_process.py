"""`python -m services.matcher` as it runs in production: configured by HOOKS_ variables, creates its
topics, serves gRPC, consumes, and on SIGTERM stops consuming, commits what is done and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.broker import free_port
from services.common.channels import channel
from tests.helpers.groups import SESSION_TIMEOUT_MS
from tests.helpers.matcher import Kafka, message
from tests.helpers.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


async def test_process_serves_consumes_and_drains_on_sigterm(kafka, registry, sender, receiver, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    broker = Kafka(kafka.bootstrap_servers, f"hooks.outbox.proc.{suffix}", f"hooks.outbox.dlq.proc.{suffix}")
    endpoint = await registry.endpoint(receiver.url("proc"))
    await registry.filter([endpoint.id])
    port = free_port()
    group = f"proc-{suffix}"
    env = {
        **os.environ,
        "HOOKS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "HOOKS_KAFKA_TOPIC": broker.outbox,
        "HOOKS_KAFKA_DLQ_TOPIC": broker.dlq,
        "HOOKS_KAFKA_CREATE_TOPICS": "true",
        "HOOKS_KAFKA_TOPIC_PARTITIONS": "2",
        "HOOKS_MATCHER_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "HOOKS_MATCHER_GROUP_ID": group,
        "HOOKS_MATCHER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "HOOKS_REGISTRY_TARGET": registry.target,
        "HOOKS_SENDER_TARGET": sender.target,
        "HOOKS_SHUTDOWN_GRACE_SECONDS": "5",
        "HOOKS_LOG_FORMAT": "json",
    }
    log = open(tmp_path / "matcher.log", "wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.matcher", cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        async with channel(f"127.0.0.1:{port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)

            async def serving() -> bool:
                try:
                    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                except grpc.aio.AioRpcError:
                    return False
                return answer.status == health_pb2.HealthCheckResponse.SERVING

            await eventually(serving, message="the matcher process serves")
        # It created the topics; produce, and see it deliver.
        placed = await broker.aproduce([message(message={"text": f"p{i}"}) for i in range(5)], partition=1)
        await eventually(lambda: len(receiver.on("proc")) == 5, message="delivered by the process")

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        assert (await broker.acommitted(group))[1] == placed[-1][1] + 1
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()
    output = (tmp_path / "matcher.log").read_text()
    assert "consumer closed" in output and "server stopped" in output
