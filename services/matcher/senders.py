"""Handing events to the senders over DeliveryService.DeliverBatch, until a sender acknowledges them.

`SenderPool` keeps N bidi streams open on one round_robin channel, so they spread over the sender
replicas; requests go to the streams in turn and responses are matched by `request_id`. Each stream
writes whatever requests are queued on it at once as one DeliverBatchRequest (after lingering
`BATCH_LINGER_SECONDS` for more when the batch is not full), which spares a gRPC message per
request; the sender still answers each request on its own, so acknowledging and re-sending stay per
request. A sender without DeliverBatch (an older one) gets plain Deliver streams instead.

When a stream breaks, every request waiting on it fails with `SenderUnavailable` (the caller sends it
again, on another stream, after a backoff) and the stream re-opens with a backoff of its own.
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

#: Most requests written in one DeliverBatchRequest (the sender stores up to 256 per transaction).
MAX_BATCH = 256
#: How long a stream waits for more requests when fewer than MAX_BATCH are queued: a message
#: in a quiet moment waits this much longer, a burst goes out in fewer, larger messages.
BATCH_LINGER_SECONDS = 0.001


class SenderUnavailable(Exception):
    """The request was not acknowledged: the stream broke, timed out, or the sender said non-OK."""

    def __init__(self, message: str, code: int = code_pb2.UNAVAILABLE):
        super().__init__(message)
        self.code = code


class _Stream:
    """One DeliverBatch (or Deliver) call, re-opened whenever it ends."""

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
            batched = self.pool.batched
            rpc = self.pool.stub.DeliverBatch if batched else self.pool.stub.Deliver
            call = rpc(wait_for_ready=True)
            self.connected.set()
            writer = asyncio.create_task(self._write_batches(call) if batched else self._write(call))
            problem = "ended"
            answered = False
            try:
                async for message in call:
                    answered = True
                    for response in message.responses if batched else (message,):
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
                if batched and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    # An older sender: fall back to Deliver, for every stream of the pool, at once.
                    log.warning("the sender has no DeliverBatch; using Deliver", stream=self.index)
                    self.pool.batched = False
                    self.connected.clear()
                    writer.cancel()
                    call.cancel()
                    self._fail_pending(f"sender stream {self.index} re-opens with Deliver")
                    continue
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

    async def _write_batches(self, call) -> None:
        try:
            while True:
                batch = [await self.outbox.get()]
                self._take_queued(batch)
                if len(batch) < MAX_BATCH:
                    await asyncio.sleep(BATCH_LINGER_SECONDS)
                    self._take_queued(batch)
                # Those given up on (timed out) before being written are left out.
                requests = [request for request in batch if request.request_id in self.pending]
                if requests:
                    await call.write(deliveries_pb2.DeliverBatchRequest(requests=requests))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - end the call: the reader cleans up and re-opens
            log.warning("sender stream write failed", stream=self.index, error=repr(exc))
            call.cancel()

    def _take_queued(self, batch: list[deliveries_pb2.DeliverRequest]) -> None:
        while len(batch) < MAX_BATCH and not self.outbox.empty():
            batch.append(self.outbox.get_nowait())

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
        #: Whether the streams use DeliverBatch; cleared for good when the sender does not have it.
        self.batched = True
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
