"""What the end-to-end tests stand on: HTTP and SMTP receivers on loopback, a plain Kafka producer,
and services run as real processes (`python -m services.<name>`) where a test must kill one.

Nothing here is a fake: the receivers are real aiohttp and aiosmtpd servers; the producer is a plain
confluent-kafka Producer (not hooks' own code), the way an application publishes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import grpc
from aiohttp import web
from confluent_kafka import Consumer, Producer, TopicPartition
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.broker import free_port
from tests.helpers.waiting import eventually  # noqa: F401 - re-exported to the tests

REPO = Path(__file__).resolve().parents[2]


# -- receivers ----------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self):
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """An HTTP server on 127.0.0.1 recording every POST; answers the statuses in `script` first, one per
    request, then `status` (200 unless a test says)."""

    requests: list[Received] = field(default_factory=list)
    status: int = 200
    script: list[int] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> "HttpReceiver":
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Received(request.path, dict(request.headers), body, time.time()))
        status = self.script.pop(0) if self.script else self.status
        return web.Response(status=status, text="ok" if status < 400 else "try again")

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


class SmtpInbox:
    """An aiosmtpd server on 127.0.0.1 keeping every e-mail it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        email = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), email))
        return "250 OK"

    def start(self) -> "SmtpInbox":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


# -- producing ----------------------------------------------------------------------------------


def incoming(account: str, application: str, event_type: str, level: str = "", message="hello", **extra) -> dict:
    """A message in the incoming format, with a fresh id and the current time."""
    return {
        "id": str(uuid.uuid4()),
        "application": application,
        "event_type": event_type,
        "level": level,
        "account_id": account,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "message": message,
        **extra,
    }


def produce(bootstrap: str, topic: str, messages: list[dict], key: str | None = None) -> None:
    """Publishes with a plain confluent-kafka Producer, as any application would, and waits for acks.
    Keyed by each message's id unless `key` is given (one key: one partition, in order)."""
    failures: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 0})

    def report(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    for message in messages:
        while True:
            try:
                producer.produce(
                    topic, json.dumps(message).encode(), key=(key or message["id"]).encode(), on_delivery=report
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still unconfirmed"
    assert not failures, failures


def consume_one(bootstrap: str, topic: str, timeout: float = 30.0):
    """The first message on `topic` (a fresh consumer group, from the beginning)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"e2e-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "log_level": 0,
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return message
    finally:
        consumer.close()
    raise AssertionError(f"nothing on {topic} within {timeout}s")


def committed_total(bootstrap: str, group_id: str, topic: str, partitions: int) -> int:
    """How many messages of `topic` a consumer group has committed as done (summed over partitions)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "log_level": 0})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in offsets)


# -- services as processes -----------------------------------------------------------------------


async def grpc_serving(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.aio.AioRpcError:
            return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


class ServiceProcess:
    """`python -m services.<name>` with the given HOOKS_* environment; its output goes to a log file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "HOOKS_LOG_FORMAT": "json", "HOOKS_METRICS_PORT": "0", **env}
        self.address = self.env[f"HOOKS_{name.upper()}_LISTEN_ADDRESS"]
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    async def start(self, timeout: float = 60.0) -> "ServiceProcess":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not await grpc_serving(self.address):
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not serving within {timeout}s: {self.log_tail()}")
            await asyncio.sleep(0.1)
        return self

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye, exactly like a crash."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
