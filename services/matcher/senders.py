"""Handing events to the senders over DeliveryService.DeliverBatch, until a sender acknowledges them.

`SenderPool` keeps N bidi streams open on one round_robin channel, so they spread over the sender
replicas; a message's requests go to the stream of its partition (so that one partition reaches the
senders in the order consumed; to another stream while that one is down), and responses are matched
by `request_id`. A sender without DeliverBatch (an older one) gets plain Deliver streams instead.

Each request is serialised once, when it is handed in (`deliver_once`), and parsed back the way a
sender parses it: one that cannot be carried (nested deeper than protobuf parses), or that is larger
than one gRPC message may be (HOOKS_GRPC_MAX_MESSAGE_BYTES), fails alone with `Unsendable` before
anything is written. A stream writes whatever requests are queued on it at once as one
DeliverBatchRequest of at most MAX_BATCH requests and MAX_BATCH_BYTES bytes (a larger request goes
alone), after lingering `BATCH_LINGER_SECONDS` for more when there is room; the message is the
requests' bytes put together (the wire form of `repeated DeliverRequest requests = 1`), so nothing
is copied or serialised again. The sender still answers each request on its own, so acknowledging
and re-sending stay per request. A request sent again after a failure that was not an outage's
(`alone`) goes on a call of its own, so that whatever it does to its call (a poison that makes the
sender end it) touches no other request.

A stream is `connected` only while its call is open and both its reader and its writer run. It opens
the call once the channel is ready and re-opens it, with a backoff, whenever the call ends for any
reason: the sender ended it, it broke, the writer failed. Only the pool's `stop` ends it for good.
When a call ends, every request waiting on it fails with `SenderUnavailable` carrying the call's
status code (the caller sends it again, on another stream, after a backoff).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import grpc
from google.rpc import code_pb2

from hooks.sender.v1 import deliveries_pb2
from services.common.backoff import backoff_delays
from services.common.logging import get_logger
from services.matcher.poison import Successes, is_outage

log = get_logger(__name__)

#: Most requests written in one DeliverBatchRequest (the sender stores up to 256 per transaction).
MAX_BATCH = 256
#: Most bytes of one DeliverBatchRequest (well under HOOKS_GRPC_MAX_MESSAGE_BYTES, whose default is 4 MiB):
#: a burst of large events goes in several messages; a request larger than this goes alone.
MAX_BATCH_BYTES = 1024 * 1024
#: How long a stream waits for more requests when fewer than MAX_BATCH are queued: a message
#: in a quiet moment waits this much longer, a burst goes out in fewer, larger messages.
BATCH_LINGER_SECONDS = 0.001

_SERVICE = deliveries_pb2.DESCRIPTOR.services_by_name["DeliveryService"].full_name
#: The field tag of DeliverBatchRequest.requests (length-delimited).
_REQUESTS_TAG = bytes([deliveries_pb2.DeliverBatchRequest.DESCRIPTOR.fields_by_name["requests"].number << 3 | 2])


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class SenderUnavailable(Exception):
    """The request was not acknowledged: its stream ended or broke, no answer came in time, or the
    sender answered non-OK. `code` is the google.rpc code of the answer or of the call's end."""

    def __init__(self, message: str, code: int = code_pb2.UNAVAILABLE):
        super().__init__(message)
        self.code = code

    @property
    def outage(self) -> bool:
        """Whether this is what a sender that is down or slow answers (waited out; see poison)."""
        return is_outage(self.code)


class Unsendable(Exception):
    """The request cannot be written at all: it cannot be serialised, or it is larger than a gRPC
    message may be (`too_large`). Sending it again would not help."""

    def __init__(self, message: str, too_large: bool):
        super().__init__(message)
        self.too_large = too_large


@dataclass(slots=True)
class _Outgoing:
    request_id: str
    #: The serialised DeliverRequest, framed as one element of DeliverBatchRequest.requests.
    framed: bytes
    #: Where the request's own bytes start in `framed` (after the tag and length).
    start: int
    #: Written in a DeliverBatchRequest of its own (larger than a batch may be).
    alone: bool

    @property
    def data(self) -> bytes:
        """The DeliverRequest's own bytes (a Deliver message)."""
        return self.framed[self.start :]


class _Stream:
    """One DeliverBatch (or Deliver) call at a time, re-opened whenever it ends."""

    def __init__(self, pool: SenderPool, index: int):
        self.pool = pool
        self.index = index
        self.pending: dict[str, asyncio.Future[deliveries_pb2.DeliverResponse]] = {}
        #: Requests waiting to be written, in order; a request given up on is taken out at once.
        self.outbox: OrderedDict[str, _Outgoing] = OrderedDict()
        self._queued = asyncio.Event()
        self.connected = asyncio.Event()
        #: Whether the sender answered anything on the current call.
        self.answered = False
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"sender-stream-{self.index}")

    async def _run(self) -> None:
        delays = backoff_delays(maximum=self.pool.max_backoff)
        while True:
            await self.pool.channel.channel_ready()
            batched = self.pool.batched
            code, problem, answered = await self._serve_call(batched)
            if batched and code == code_pb2.UNIMPLEMENTED:
                # An older sender: fall back to Deliver, for every stream of the pool, at once.
                log.warning("the sender has no DeliverBatch; using Deliver", stream=self.index)
                self.pool.batched = False
                continue
            if answered:  # it worked for a while: start the backoff over
                delays = backoff_delays(maximum=self.pool.max_backoff)
            delay = next(delays)
            log.warning("sender stream ended; re-opening", stream=self.index, problem=problem, retry_in=round(delay, 2))
            await asyncio.sleep(delay)

    async def _serve_call(self, batched: bool) -> tuple[int, str, bool]:
        """Opens one call and serves it until it ends, for whatever reason; returns (google.rpc code,
        what happened, whether the sender answered anything). Only a cancellation of the stream's
        own task (the pool stopping) is raised."""
        call = (self.pool.deliver_batch if batched else self.pool.deliver)(wait_for_ready=True)
        reader = asyncio.create_task(self._read(call, batched), name=f"sender-stream-{self.index}-reader")
        writer = asyncio.create_task(self._write(call, batched), name=f"sender-stream-{self.index}-writer")
        self.answered = False
        self.connected.set()
        code, problem = code_pb2.UNAVAILABLE, "ended"
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                error = None if reader.cancelled() else reader.exception()
                if isinstance(error, grpc.aio.AioRpcError):
                    code, problem = error.code().value[0], f"{error.code().name}: {error.details()}"
                elif error is not None:
                    problem = f"reading failed: {error!r}"
                else:
                    problem = "the sender ended the call"
            else:
                error = None if writer.cancelled() else writer.exception()
                problem = f"writing failed: {error!r}"
        finally:
            self.connected.clear()
            call.cancel()
            reader.cancel()
            writer.cancel()
            # An older sender's UNIMPLEMENTED says nothing of the requests: they are sent again at once.
            self._fail_pending(
                f"sender stream {self.index} ended ({problem})",
                code_pb2.UNAVAILABLE if code == code_pb2.UNIMPLEMENTED else code,
            )
            await asyncio.gather(reader, writer, return_exceptions=True)
        return code, problem, self.answered

    async def _read(self, call: grpc.aio.StreamStreamCall, batched: bool) -> None:
        async for message in call:
            self.answered = True
            for response in message.responses if batched else (message,):
                future = self.pending.pop(response.request_id, None)
                if future is not None and not future.done():
                    future.set_result(response)

    async def _write(self, call: grpc.aio.StreamStreamCall, batched: bool) -> None:
        while True:
            batch = await self._next_batch(MAX_BATCH if batched else 1)
            if batched:
                await call.write(b"".join(outgoing.framed for outgoing in batch))
            else:
                await call.write(batch[0].data)

    async def _next_batch(self, most: int) -> list[_Outgoing]:
        """The requests to write next: those queued now (or the next one to come), within `most` and
        MAX_BATCH_BYTES; lingers a moment for more when there is room."""
        while not self.outbox:
            self._queued.clear()
            await self._queued.wait()
        batch = [self.outbox.popitem(last=False)[1]]
        if batch[0].alone or most == 1:
            return batch
        size = self._fill(batch, len(batch[0].framed), most)
        if len(batch) < most and size < self.pool.batch_bytes:
            await asyncio.sleep(BATCH_LINGER_SECONDS)
            self._fill(batch, size, most)
        return batch

    def _fill(self, batch: list[_Outgoing], size: int, most: int) -> int:
        while self.outbox and len(batch) < most:
            outgoing = next(iter(self.outbox.values()))
            if outgoing.alone or size + len(outgoing.framed) > self.pool.batch_bytes:
                break
            del self.outbox[outgoing.request_id]
            batch.append(outgoing)
            size += len(outgoing.framed)
        return size

    def _fail_pending(self, message: str, code: int) -> None:
        """Fails every request waiting on the call that ended: those written with the call's `code`;
        those queued but never written with UNAVAILABLE (the end was not theirs). Their callers send
        them again."""
        pending, self.pending = self.pending, {}
        unwritten, self.outbox = self.outbox, OrderedDict()
        for request_id, future in pending.items():
            if not future.done():
                future.set_exception(
                    SenderUnavailable(message, code_pb2.UNAVAILABLE if request_id in unwritten else code)
                )
                future.exception()

    async def send(self, outgoing: _Outgoing, timeout: float) -> deliveries_pb2.DeliverResponse:
        future: asyncio.Future[deliveries_pb2.DeliverResponse] = asyncio.get_running_loop().create_future()
        self.pending[outgoing.request_id] = future
        self.outbox[outgoing.request_id] = outgoing
        self._queued.set()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise SenderUnavailable(
                f"no answer on sender stream {self.index} within {timeout}s", code_pb2.DEADLINE_EXCEEDED
            ) from None
        finally:
            self.pending.pop(outgoing.request_id, None)
            self.outbox.pop(outgoing.request_id, None)  # given up on before it was written


class SenderPool:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        streams: int = 2,
        timeout: float = 30.0,
        max_backoff: float = 5.0,
        max_message_bytes: int = 4 * 1024 * 1024,
    ):
        """`max_message_bytes`: the channel's limit on one gRPC message (HOOKS_GRPC_MAX_MESSAGE_BYTES)."""
        self.channel = channel
        # Requests go as bytes already serialised (see _Outgoing); answers are parsed as usual.
        self.deliver_batch = channel.stream_stream(
            f"/{_SERVICE}/DeliverBatch", response_deserializer=deliveries_pb2.DeliverBatchResponse.FromString
        )
        self.deliver = channel.stream_stream(
            f"/{_SERVICE}/Deliver", response_deserializer=deliveries_pb2.DeliverResponse.FromString
        )
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.max_message_bytes = max_message_bytes
        #: Most bytes of one DeliverBatchRequest.
        self.batch_bytes = min(MAX_BATCH_BYTES, max_message_bytes)
        #: Whether the streams use DeliverBatch; cleared for good when the sender does not have it.
        self.batched = True
        #: Every request a sender acknowledged (the evidence that the senders serve others).
        self.acknowledged = Successes()
        self._streams = [_Stream(self, i) for i in range(max(1, streams))]
        self._turn = itertools.cycle(range(len(self._streams)))
        #: The stream each partition (`affinity`) goes to; as many entries as the topic has partitions.
        self._homes: dict[int, int] = {}

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

    @property
    def connected(self) -> int:
        """How many streams are usable now."""
        return sum(1 for stream in self._streams if stream.connected.is_set())

    def _pick(self, avoid: int | None, affinity: int | None = None) -> _Stream:
        """The stream of `affinity` (e.g. the message's partition, so that one partition's requests
        reach the senders in the order consumed), else the next in turn; preferring connected ones
        and not `avoid` (the one that just failed)."""
        if affinity is None:
            start = next(self._turn)
        elif (home := self._homes.get(affinity)) is not None:
            start = home
        else:
            start = self._homes[affinity] = next(self._turn)  # partitions spread over the streams in turn
        candidates = self._streams[start:] + self._streams[:start]
        for stream in candidates:
            if stream.connected.is_set() and stream.index != avoid:
                return stream
        for stream in candidates:
            if stream.connected.is_set():
                return stream
        return candidates[0]

    def _outgoing(self, request: deliveries_pb2.DeliverRequest) -> _Outgoing:
        """The request serialised and framed, or raises Unsendable. It is parsed back as a sender will
        parse it, so that what a sender could not read (protobuf parses at most 100 levels deep, and
        writes any depth) fails here, alone, rather than break the stream it would be written on."""
        try:
            data = request.SerializeToString()
            head = _REQUESTS_TAG + _varint(len(data))
            framed = head + data
            deliveries_pb2.DeliverBatchRequest.FromString(framed)
        except Exception as exc:  # noqa: BLE001 - e.g. nested deeper than protobuf parses
            raise Unsendable(f"the request cannot be carried: {exc}", too_large=False) from None
        if len(framed) > self.max_message_bytes:
            raise Unsendable(
                f"the request is {len(framed)} bytes, larger than one gRPC message may be ({self.max_message_bytes})",
                too_large=True,
            )
        return _Outgoing(request.request_id, framed, len(head), len(framed) > self.batch_bytes)

    async def deliver_once(
        self,
        request: deliveries_pb2.DeliverRequest,
        avoid: int | None = None,
        alone: bool = False,
        affinity: int | None = None,
    ) -> tuple[int, deliveries_pb2.DeliverResponse | None, SenderUnavailable | Unsendable | None]:
        """Sends one request on one stream (on a call of its own when `alone`; on the stream of
        `affinity` while it is up): (stream index, OK response or None, the failure or None)."""
        stream = self._pick(avoid, affinity)
        if not request.request_id:
            request.request_id = uuid.uuid4().hex
        try:
            outgoing = self._outgoing(request)
        except Unsendable as exc:
            return stream.index, None, exc
        try:
            response = await (self._send_alone(outgoing) if alone else stream.send(outgoing, self.timeout))
        except SenderUnavailable as exc:
            return stream.index, None, exc
        if response.status.code != code_pb2.OK:
            return (
                stream.index,
                None,
                SenderUnavailable(
                    f"sender answered {_code_name(response.status.code)}: {response.status.message}",
                    response.status.code,
                ),
            )
        self.acknowledged.add()
        return stream.index, response, None

    async def _send_alone(self, outgoing: _Outgoing) -> deliveries_pb2.DeliverResponse:
        """Writes the request on a call of its own and waits for its answer (at most `timeout`); the
        call's end, whatever its code, is this request's alone."""
        batched = self.batched
        call = (self.deliver_batch if batched else self.deliver)(wait_for_ready=True, timeout=self.timeout)
        try:
            await call.write(outgoing.framed if batched else outgoing.data)
            await call.done_writing()
            async for message in call:
                for response in message.responses if batched else (message,):
                    if response.request_id == outgoing.request_id:
                        return response
            raise SenderUnavailable("the sender ended the call without answering")
        except asyncio.CancelledError:
            raise
        except SenderUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the call ended (AioRpcError), or writing found it ended
            call.cancel()
            code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else await call.code()
            details = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else await call.details()
            if batched and code == grpc.StatusCode.UNIMPLEMENTED:
                log.warning("the sender has no DeliverBatch; using Deliver")
                self.batched = False
                raise SenderUnavailable("the sender has no DeliverBatch; sending again with Deliver") from None
            raise SenderUnavailable(f"its own call ended ({code.name}: {details})", code.value[0]) from None
        finally:
            call.cancel()


def _code_name(code: int) -> str:
    try:
        return code_pb2.Code.Name(code)
    except ValueError:
        return str(code)
