"""Waiting for a condition in tests: poll it until it holds, never sleep a fixed time instead."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    condition: Callable[[], Awaitable[object] | object],
    timeout: float = 30.0,
    message: str = "",
    interval: float = 0.05,
):
    """Polls `condition` (a function or a coroutine function) until it returns something truthy and
    returns that; fails the test, naming `message`, after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {message or condition}")
        await asyncio.sleep(interval)
