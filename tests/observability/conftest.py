"""The observability test bench: the whole pipeline in this process (registry, sender and matcher as
real gRPC servers on port 0, the session's real broker, a real HTTP receiver on loopback), with the
services' logging configured the way `python -m services.<name>` configures it (JSON, at DEBUG) and
every line it writes captured, so a test can read what an operator would read. The helpers are in
tests/helpers/observability.py."""

from __future__ import annotations

import io
import logging
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import structlog
from aiohttp import web

from hooks.registry.v1 import (
    applications_pb2,
    applications_pb2_grpc,
)
from services.common.logging import configure_logging
from services.common.settings import KafkaSettings
from tests.helpers.groups import SESSION_TIMEOUT_MS
from tests.helpers.observability import SHOP, CapturedLogs, Pipeline, Receiver
from tests.helpers.waiting import eventually


@pytest.fixture
def captured_logs(monkeypatch) -> CapturedLogs:
    """configure_logging("debug", "json") as a service does, writing to a buffer instead of stderr;
    the previous logging set-up comes back afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_structlog = structlog.get_config()
    stream = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", stream)
        configure_logging("debug", "json")
    try:
        yield CapturedLogs(stream)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_structlog)


@pytest_asyncio.fixture
async def pipeline(kafka, topics, tmp_path) -> AsyncIterator[Pipeline]:
    """Registry, sender and matcher on port 0 (SQLite), wired to each other, this test's topics and a
    receiver; `shop` is registered. Logging is whatever the test configured before asking for it."""
    from services.common.channels import channel
    from services.matcher.server import build_server as build_matcher
    from services.matcher.settings import MatcherSettings
    from services.registry.server import build_server as build_registry
    from services.registry.settings import RegistrySettings
    from services.sender.server import build_server as build_sender
    from services.sender.settings import SenderSettings

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.port = site._server.sockets[0].getsockname()[1]

    kafka_settings = KafkaSettings(
        bootstrap_servers=kafka.bootstrap_servers, topic=topics["outbox"], dlq_topic=topics["dlq"]
    )
    servers = []
    registry_channel = None
    try:
        registry = await build_registry(
            RegistrySettings(registry_database_url=f"sqlite:///{tmp_path / 'registry.db'}", shutdown_grace_seconds=1)
        )
        registry_target = f"127.0.0.1:{await registry.start('127.0.0.1:0')}"
        servers.append(registry)
        registry_channel = channel(registry_target)
        await applications_pb2_grpc.ApplicationServiceStub(registry_channel).RegisterApplication(
            applications_pb2.RegisterApplicationRequest(application=SHOP)
        )
        sender = await build_sender(
            SenderSettings(
                sender_database_url=f"sqlite:///{tmp_path / 'sender.db'}",
                registry_target=registry_target,
                sender_allowed_networks="127.0.0.0/8",
                sender_poll_interval=0.2,
                shutdown_grace_seconds=1,
            ),
            kafka_settings,
        )
        sender_target = f"127.0.0.1:{await sender.start('127.0.0.1:0')}"
        servers.append(sender)
        matcher = await build_matcher(
            MatcherSettings(
                registry_target=registry_target,
                sender_target=sender_target,
                matcher_group_id=f"obs-{uuid.uuid4().hex[:8]}",
                matcher_session_timeout_ms=SESSION_TIMEOUT_MS,
                matcher_max_backoff_seconds=0.5,
                matcher_stats_interval_ms=200,
                matcher_deliver_timeout_seconds=2,
                shutdown_grace_seconds=1,
            ),
            kafka_settings,
        )
        await matcher.start("127.0.0.1:0")
        servers.append(matcher)
        await eventually(matcher.matcher.consumer.assigned.is_set, message="partitions assigned")
        yield Pipeline(kafka.bootstrap_servers, kafka_settings, receiver, registry_channel, matcher, sender)
    finally:
        for server in reversed(servers):
            await server.stop(1)
        if registry_channel is not None:
            await registry_channel.close()
        await runner.cleanup()
