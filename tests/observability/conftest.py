"""The observability test bench: the whole system in this process (tests/helpers/stack.py: registry,
sender, matcher and gateway on port 0, the session's real broker, a real HTTP receiver), with the
services' logging configured the way `python -m services.<name>` configures it (JSON, at DEBUG) and
every line it writes captured, so a test can read what an operator would read. The helpers are in
tests/helpers/observability.py."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import structlog

from services.common.logging import configure_logging
from tests.helpers.observability import SHOP, CapturedLogs, Pipeline
from tests.helpers.stack import running_stack


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
    """The whole system (tests/helpers/stack.py) on SQLite, this test's topics and a receiver, with the
    matcher's statistics every 200 ms; `shop` is registered. Logging is whatever the test configured
    before asking for it."""
    async with running_stack(
        f"sqlite:///{tmp_path / 'registry.db'}",
        kafka.bootstrap_servers,
        topics,
        sender_settings={"sender_poll_interval_seconds": 0.2},
        matcher_settings={"matcher_stats_interval_ms": 200},
    ) as stack:
        await stack.register(SHOP)
        yield Pipeline(stack)
