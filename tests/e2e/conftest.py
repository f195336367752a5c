"""Fixtures of the end-to-end tests: the whole system in this process (tests/helpers/stack.py), receivers
on loopback, a client that talks to the services the way a user's tools do (gRPC, x-rh-identity), and
a real browser for the console (tests/helpers/browser.py)."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio

from tests.helpers.browser import chromium
from tests.helpers.e2e import FAST_RETRIES, POLICIES, Hooks, HttpReceiver, Pipeline
from tests.helpers.smtp import smtp_inbox
from tests.helpers.stack import running_stack


@pytest.fixture
def sender_database_url(request, tmp_path):
    """SQLite, or a fresh PostgreSQL database where a test parametrises this fixture with "postgresql"."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'sender.db'}"


@pytest_asyncio.fixture
async def pipeline(kafka, topics, tmp_path, sender_database_url):
    """The whole system (tests/helpers/stack.py: registry, sender, matcher and gateway in this process on
    port 0, the session's broker and this test's topics), with an HTTP receiver and an SMTP server on
    loopback. The registry's database is SQLite; the sender's is `sender_database_url`."""
    receiver = await HttpReceiver().start()
    group_id = f"e2e-matcher-{uuid.uuid4().hex[:8]}"
    try:
        async with (
            smtp_inbox() as smtp,
            running_stack(
                f"sqlite:///{tmp_path / 'registry.db'}",
                kafka.bootstrap_servers,
                topics,
                sender_database_url=sender_database_url,
                sender_settings={
                    "sender_retry_schedule": FAST_RETRIES,
                    "sender_poll_interval_seconds": 0.2,
                    "sender_smtp_host": "127.0.0.1",
                    "sender_smtp_port": smtp.port,
                },
                matcher_settings={"matcher_group_id": group_id},
            ) as stack,
        ):
            hooks = Hooks(stack.registry_target, stack.sender_target)
            yield Pipeline(hooks, receiver, smtp, kafka.bootstrap_servers, topics["outbox"], topics["dlq"], group_id)
            await hooks.close()
    finally:
        await receiver.stop()


@pytest_asyncio.fixture(scope="session")
async def browser():
    """Debian's Chromium driven by Playwright (tests/helpers/browser.py), one for the session."""
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture
async def console_stack(request, kafka, topics, tmp_path):
    """The whole system (tests/helpers/stack.py) with its gateway in development (the console's
    sign-in on) unless a test parametrises this fixture with False; the application `policies`
    (tests.helpers.e2e.POLICIES) is registered. The console is at
    f"http://127.0.0.1:{stack.gateway.port}/console/"."""
    async with running_stack(
        f"sqlite:///{tmp_path / 'registry.db'}",
        kafka.bootstrap_servers,
        topics,
        sender_settings={"sender_retry_schedule": FAST_RETRIES, "sender_poll_interval_seconds": 0.2},
        gateway_settings={"gateway_development": getattr(request, "param", True)},
    ) as stack:
        await stack.register(POLICIES)
        yield stack
