"""Fixtures of the end-to-end tests: the whole pipeline in this process (registry, sender and matcher
as real gRPC servers on port 0, the session's real broker), receivers on loopback, and a client that
talks to the services the way a user's tools do (gRPC, x-rh-identity)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
import pytest_asyncio
from e2e_client import FAST_RETRIES, Hooks
from e2e_support import HttpReceiver, SmtpInbox, committed_total

from services.common.settings import KafkaSettings
from tests.helpers.groups import SESSION_TIMEOUT_MS


@dataclass
class Pipeline:
    hooks: Hooks
    receiver: HttpReceiver
    smtp: SmtpInbox
    bootstrap: str
    topic: str
    dlq_topic: str
    group_id: str

    def committed(self) -> int:
        return committed_total(self.bootstrap, self.group_id, self.topic, 2)


@pytest.fixture
def sender_database_url(request, tmp_path):
    """SQLite, or a fresh PostgreSQL database where a test parametrises this fixture with "postgresql"."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'sender.db'}"


@pytest_asyncio.fixture
async def pipeline(kafka, topics, tmp_path, sender_database_url):
    """Registry, sender and matcher in this process on port 0, wired to each other, the session's broker
    and this test's topics; an HTTP receiver and an SMTP server on loopback. The registry's database is
    SQLite; the sender's is `sender_database_url`."""
    from services.matcher.server import build_server as build_matcher
    from services.matcher.settings import MatcherSettings
    from services.registry.server import build_server as build_registry
    from services.registry.settings import RegistrySettings
    from services.sender.server import build_server as build_sender
    from services.sender.settings import SenderSettings

    smtp = SmtpInbox().start()
    receiver = await HttpReceiver().start()
    servers = []
    try:
        registry = await build_registry(RegistrySettings(registry_database_url=f"sqlite:///{tmp_path / 'registry.db'}"))
        registry_target = f"127.0.0.1:{await registry.start('127.0.0.1:0')}"
        servers.append(registry)
        sender = await build_sender(
            SenderSettings(
                sender_database_url=sender_database_url,
                registry_target=registry_target,
                sender_allowed_networks="127.0.0.0/8",
                sender_retry_schedule=FAST_RETRIES,
                sender_poll_interval=0.2,
                sender_smtp_host="127.0.0.1",
                sender_smtp_port=smtp.port,
                shutdown_grace_seconds=2,
            )
        )
        sender_target = f"127.0.0.1:{await sender.start('127.0.0.1:0')}"
        servers.append(sender)
        group_id = f"e2e-matcher-{uuid.uuid4().hex[:8]}"
        matcher = await build_matcher(
            MatcherSettings(
                registry_target=registry_target,
                sender_target=sender_target,
                matcher_group_id=group_id,
                matcher_session_timeout_ms=SESSION_TIMEOUT_MS,
                matcher_max_backoff_seconds=0.5,
                shutdown_grace_seconds=2,
            ),
            KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, topic=topics["outbox"], dlq_topic=topics["dlq"]),
        )
        await matcher.start("127.0.0.1:0")
        servers.append(matcher)
        hooks = Hooks(registry_target, sender_target)
        yield Pipeline(hooks, receiver, smtp, kafka.bootstrap_servers, topics["outbox"], topics["dlq"], group_id)
        await hooks.close()
    finally:
        for server in reversed(servers):
            await server.stop(2)
        await receiver.stop()
        smtp.stop()
