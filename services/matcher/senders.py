"""Handing events to the senders over DeliveryService.Deliver, until a sender acknowledges them.

`SenderPool` keeps N bidi streams open on one round_robin channel, so they spread over the sender
replicas; requests go to the streams in turn and responses are matched by `request_id`. When a stream
breaks, every request waiting on it fails with `SenderUnavailable` (the caller sends it again, on
another stream, after a backoff) and the stream re-opens with a backoff of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

import grpc
from google.rpc import code_pb2
from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc

from services.common.logging import get_logger
from services.matcher.routes import backoff_delays

log = get_logger(__name__)


class SenderUnavailable(Exception):
    """The request was not acknowledged: the stream broke, timed out, or the sender said non-OK."""

    def __init__(self, message: str, code: int = code_pb2.UNAVAILABLE):
        super().__init__(message)
        self.code = code


class _Stream:
    """One Deliver call, re-opened whenever it ends."""

    def __init__(self, pool: "SenderPool", index: int):
        self.pool = pool
        self.index = index
        self.pending: dict[str, asyncio.Future[deliveries_pb2.DeliverResponse]] = {}
        self.outbox: asyncio.Queue[deliveries_pb2.DeliverRequest] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"sender-stream-{self.index}")

    async def _run(self) -> None:
        delays = backoff_delays(maximum=self.pool.max_backoff)
        while True:
            call = self.pool.stub.Deliver(wait_for_ready=True)
            self.connected.set()
            writer = asyncio.create_task(self._write(call))
            problem = "ended"
            answered = False
            try:
                async for response in call:
                    answered = True
                    future = self.pending.pop(response.request_id, None)
                    if future is not None and not future.done():
                        future.set_result(response)
            except asyncio.CancelledError:
                call.cancel()
                writer.cancel()
                self._fail_pending("the matcher is stopping")
                raise
            except grpc.aio.AioRpcError as exc:
                problem = f"{exc.code().name}: {exc.details()}"
            self.connected.clear()
            writer.cancel()
            call.cancel()
            self._fail_pending(f"sender stream {self.index} broke ({problem})")
            if answered:  # it worked for a while: start the backoff over
                delays = backoff_delays(maximum=self.pool.max_backoff)
            delay = next(delays)
            log.warning("sender stream broke; re-opening", stream=self.index, problem=problem, retry_in=round(delay, 2))
            await asyncio.sleep(delay)

    async def _write(self, call) -> None:
        try:
            while True:
                request = await self.outbox.get()
                if request.request_id not in self.pending:
                    continue  # given up on (timed out) before it was written
                await call.write(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - end the call: the reader cleans up and re-opens
            log.warning("sender stream write failed", stream=self.index, error=repr(exc))
            call.cancel()

    def _fail_pending(self, message: str) -> None:
        pending, self.pending = self.pending, {}
        # Requests queued but never written go with them: their callers send them again.
        while not self.outbox.empty():
            self.outbox.get_nowait()
        for future in pending.values():
            if not future.done():
                future.set_exception(SenderUnavailable(message))
                future.exception()

    async def send(self, request: deliveries_pb2.DeliverRequest, timeout: float) -> deliveries_pb2.DeliverResponse:
        future: asyncio.Future[deliveries_pb2.DeliverResponse] = asyncio.get_running_loop().create_future()
        self.pending[request.request_id] = future
        self.outbox.put_nowait(request)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise SenderUnavailable(f"no answer on sender stream {self.index} within {timeout}s") from None
        finally:
            self.pending.pop(request.request_id, None)


class SenderPool:
    def __init__(self, channel: grpc.aio.Channel, streams: int = 2, timeout: float = 30.0, max_backoff: float = 5.0):
        self.stub = deliveries_pb2_grpc.DeliveryServiceStub(channel)
        self.timeout = timeout
        self.max_backoff = max_backoff
        self._streams = [_Stream(self, i) for i in range(max(1, streams))]
        self._turn = itertools.cycle(range(len(self._streams)))

    def start(self) -> None:
        for stream in self._streams:
            stream.start()

    async def stop(self) -> None:
        for stream in self._streams:
            if stream.task:
                stream.task.cancel()
        for stream in self._streams:
            if stream.task:
                try:
                    await stream.task
                except asyncio.CancelledError:
                    pass

    def _pick(self, avoid: int | None) -> _Stream:
        """The next stream in turn, preferring connected ones and not `avoid` (the one that just failed)."""
        start = next(self._turn)
        candidates = self._streams[start:] + self._streams[:start]
        for stream in candidates:
            if stream.connected.is_set() and stream.index != avoid:
                return stream
        for stream in candidates:
            if stream.connected.is_set():
                return stream
        return candidates[0]

    async def deliver_once(
        self, request: deliveries_pb2.DeliverRequest, avoid: int | None = None
    ) -> tuple[int, deliveries_pb2.DeliverResponse | None, SenderUnavailable | None]:
        """Sends one request on one stream: (stream index, OK response or None, the failure or None)."""
        stream = self._pick(avoid)
        if not request.request_id:
            request.request_id = uuid.uuid4().hex
        try:
            response = await stream.send(request, self.timeout)
        except SenderUnavailable as exc:
            return stream.index, None, exc
        if response.status.code != code_pb2.OK:
            return stream.index, None, SenderUnavailable(
                f"sender answered {_code_name(response.status.code)}: {response.status.message}",
                response.status.code,
            )
        return stream.index, response, None


def _code_name(code: int) -> str:
    try:
        return code_pb2.Code.Name(code)
    except ValueError:
        return str(code)
