"""The background tasks of a service's parts: one named asyncio task from `start()` until `close()`
(`BackgroundTask`), and the loop most of them run, a pass of work again and again with a pause between
(`PeriodicTask`: the sender's queue sampler, pruner and outbox relay).

    self._loop = PeriodicTask("sender-retention", self._prune_once, interval_seconds, "pruning failed", log)
    self._loop.start()   # in the running event loop
    ...
    await self._loop.close()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog


class BackgroundTask:
    """Runs `run()` in an asyncio task named `name` (asyncio's task listings and debug logs show it),
    from `start()` until `close()` cancels it and waits for it to end."""

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, object]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[object] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        """Cancels the task and waits for it to end (it may still raise what made it fail before)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class PeriodicTask(BackgroundTask):
    """Runs `work` again and again in a background task: a pass, then a pause of `interval_seconds`,
    and again. A pass that returns True is followed by the next at once (it found work: there may be
    more). With `wake`, setting that event ends the pause early (it is cleared then). A pass that raises
    is logged as a warning, `failure` with the error, on the owner's `log`, and the loop goes on after
    the pause (the database may be briefly away)."""

    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[bool | None]],
        interval_seconds: float,
        failure: str,
        log: structlog.stdlib.BoundLogger,
        wake: asyncio.Event | None = None,
    ) -> None:
        super().__init__(name, self._loop)
        self.interval = interval_seconds
        self._work = work
        self._failure = failure
        self._log = log
        self._wake = wake

    async def _loop(self) -> None:
        while True:
            try:
                busy = await self._work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; the next pass may succeed
                self._log.warning(self._failure, error=str(exc))
                busy = False
            if busy:
                continue
            if self._wake is None:
                await asyncio.sleep(self.interval)
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                self._wake.clear()
