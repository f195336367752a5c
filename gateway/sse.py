"""Server-streaming RPCs as Server-Sent Events: one `data: <json>` event per message.

A stream that can be resumed says so in its messages: a response with a `resume_token` field gives
each event that token as its `id:`, and a request with one is given the `Last-Event-ID` header, which
an EventSource sends when it reconnects (over a `resumeToken` query parameter, which the URL it
reconnects to still carries from its first connection).

An error the service answers at once gets its HTTP status like a unary call (the grace period
below lets it arrive before the stream's headers are sent); a later error ends the stream with an
`event: error` carrying the google.rpc.Status JSON. A comment line every keep-alive interval keeps
proxies from closing a quiet stream, and a client that went away ends the call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.message import Message

from gateway.errors import rpc_error_response, status_json, status_of_rpc_error

#: How long to wait for the service to accept the call (its headers or a first message) before
#: committing to a 200 stream anyway; covers the channel's retries of an unreachable service.
FIRST_ANSWER_GRACE_SECONDS = 2.0
#: Once the channel is connected, how long an immediate error (e.g. a trailers-only UNAUTHENTICATED)
#: may take to arrive.
CONNECTED_GRACE_SECONDS = 0.2
_STEP_SECONDS = 0.02
#: How often a quiet stream checks whether its client is still there.
CLIENT_CHECK_SECONDS = 1.0
#: The field of a streaming RPC's request it resumes from, and of its responses that say where to.
RESUME_FIELD = "resume_token"
LAST_EVENT_ID = "Last-Event-ID"


def resume_from_last_event_id(request: web.Request, message: Message) -> None:
    """Sets the request message's RESUME_FIELD from the Last-Event-ID header, when both are there."""
    last = request.headers.get(LAST_EVENT_ID)
    if last and RESUME_FIELD in message.DESCRIPTOR.fields_by_name:
        setattr(message, RESUME_FIELD, last)


def _event_id(message: Message) -> bytes:
    """The `id:` line of a response message's event: its RESUME_FIELD, if it has one that a line can
    carry (no line break or NUL), else none."""
    if RESUME_FIELD not in message.DESCRIPTOR.fields_by_name:
        return b""
    token = getattr(message, RESUME_FIELD)
    if not token or any(c in token for c in "\r\n\0"):
        return b""
    return b"id: " + token.encode() + b"\n"


async def stream_events(
    request: web.Request,
    call: grpc.aio.UnaryStreamCall,
    render: Callable[[Any], Any],
    keepalive_seconds: float,
    connected: Callable[[], bool] = lambda: False,
) -> web.StreamResponse:
    reader: asyncio.Future = asyncio.ensure_future(call.read())
    response: web.StreamResponse | None = None
    try:
        await _first_answer(call, reader, connected)
        if reader.done() and isinstance(reader.exception(), grpc.RpcError):
            return rpc_error_response(reader.exception())
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        await response.write(b": stream open\n\n")
        last_write = time.monotonic()
        while True:
            done, _ = await asyncio.wait({reader}, timeout=min(keepalive_seconds, CLIENT_CHECK_SECONDS))
            if not done:
                if request.transport is None or request.transport.is_closing():
                    break
                if time.monotonic() - last_write >= keepalive_seconds:
                    await response.write(b": keep-alive\n\n")
                    last_write = time.monotonic()
                continue
            try:
                message = reader.result()
            except grpc.RpcError as error:
                payload = json.dumps(status_json(status_of_rpc_error(error)))
                await response.write(f"event: error\ndata: {payload}\n\n".encode())
                break
            if message is grpc.aio.EOF:
                break
            await response.write(_event_id(message) + b"data: " + json.dumps(render(message)).encode() + b"\n\n")
            last_write = time.monotonic()
            reader = asyncio.ensure_future(call.read())
        return response
    except ConnectionResetError:  # the client went away mid-write
        return response or web.Response(status=499)
    finally:
        reader.cancel()
        call.cancel()


async def _first_answer(call: grpc.aio.UnaryStreamCall, reader: asyncio.Future, connected: Callable[[], bool]) -> None:
    """Waits until the call has answered (a message, its headers, or an error), or seems accepted by a
    connected service that is simply quiet, or the grace period is over."""
    headers = asyncio.ensure_future(call.initial_metadata())
    started = time.monotonic()
    try:
        while not reader.done():
            elapsed = time.monotonic() - started
            if elapsed >= FIRST_ANSWER_GRACE_SECONDS:
                return
            if headers.done() or (connected() and elapsed >= CONNECTED_GRACE_SECONDS):
                # Headers alone may be a trailers-only error on its way: give it a moment.
                await asyncio.wait({reader}, timeout=_STEP_SECONDS)
                return
            await asyncio.wait({reader, headers}, timeout=_STEP_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        headers.cancel()
