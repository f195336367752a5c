"""The base of hooks' gRPC server interceptors that wrap what a method does (metrics, the caller check,
the error mapping: services/common/metrics.py, tls.py, server.py).

A method handler has one behaviour, of one of four kinds: a unary response (`unary_unary`,
`stream_unary`: a coroutine returning the response) or a streamed one (`unary_stream`, `stream_stream`:
an async generator, or a coroutine that calls `context.write()`). A `BehaviourInterceptor` says only how
it wraps each of the two; finding the handler, picking its kind and putting the wrapped behaviour in its
place is done here, once:

    class Timing(BehaviourInterceptor):
        def wrap_unary_response(self, behaviour: UnaryResponse, rpc: Rpc) -> UnaryResponse:
            async def timed(request: object, context: grpc.aio.ServicerContext) -> object:
                ...  # before
                return await behaviour(request, context)
            return timed

        def wrap_streamed_response(self, behaviour: StreamedResponse, rpc: Rpc) -> StreamedResponse:
            ...
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import grpc

# What a method does, given the request (or the requests' iterator, when they stream) and the context.
UnaryResponse = Callable[[object, grpc.aio.ServicerContext], Awaitable[object]]
# Always an async generator here, whichever of the two forms the service wrote.
StreamedResponse = Callable[[object, grpc.aio.ServicerContext], AsyncIterator[object]]


@dataclass(frozen=True)
class Rpc:
    """The method being called: its full path (`/hooks.registry.v1.RegistryService/GetEndpoint`) and
    whether its requests stream (the behaviour is then given an async iterator of them)."""

    method: str
    streaming_requests: bool


async def responses_of(result: object) -> AsyncIterator[object]:
    """What a streaming behaviour answered, as an async generator: it is one already, or a coroutine
    that writes its responses with `context.write()` (nothing to yield then)."""
    if inspect.isawaitable(result):
        await result
    else:
        async for response in cast(AsyncIterator[object], result):
            yield response


class BehaviourInterceptor(grpc.aio.ServerInterceptor):
    """An interceptor that wraps every method's behaviour: subclasses say how, for a unary response and
    for a streamed one (called once a call, before it runs; what they return runs in its place)."""

    def wrap_unary_response(self, behaviour: UnaryResponse, rpc: Rpc) -> UnaryResponse:
        raise NotImplementedError

    def wrap_streamed_response(self, behaviour: StreamedResponse, rpc: Rpc) -> StreamedResponse:
        raise NotImplementedError

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """The handler with its behaviour wrapped (a subclass may change more of it, then call this)."""
        rpc = Rpc(method, streaming_requests=bool(handler.stream_unary or handler.stream_stream))
        if handler.unary_unary or handler.stream_unary:
            kind = "unary_unary" if handler.unary_unary else "stream_unary"
            return handler._replace(**{kind: self.wrap_unary_response(getattr(handler, kind), rpc)})
        kind = "unary_stream" if handler.unary_stream else "stream_stream"
        inner = getattr(handler, kind)

        def streamed(request_or_iterator: object, context: grpc.aio.ServicerContext) -> AsyncIterator[object]:
            return responses_of(inner(request_or_iterator, context))

        return handler._replace(**{kind: self.wrap_streamed_response(streamed, rpc)})

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self.wrap(handler, handler_call_details.method)
