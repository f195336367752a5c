"""The aiohttp application: the transcoding handler, identity, body limit, errors, health, the web
console's files under /console/ (gateway/console); and the
gateway's /metrics as an application of its own, for the metrics port (never the public one).

    app = build_app(settings)                       # routes of hooks.{registry,sender,matcher}.v1
    app = build_app(settings, files=[echo_pb2.DESCRIPTOR], targets={"testing.v1": "127.0.0.1:5000"})

One catch-all handler serves every route; a request is matched against the routes built from the
descriptors, then transcoded and sent through a generic gRPC client (`unary_unary` / `unary_stream`
with the method's path and the message classes), one channel per target.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

import grpc
from aiohttp import web
from aiohttp.typedefs import Handler
from google.protobuf import descriptor as _descriptor
from google.protobuf import descriptor_pb2
from google.rpc import code_pb2
from prometheus_client import CollectorRegistry

from gateway import console, docs, proto_comments, sse, transcoder
from gateway import http_routes as routes_module
from gateway.errors import GatewayError, rpc_error_response
from gateway.health import check_services
from gateway.http_routes import Route, Router
from gateway.json_render import json_body
from gateway.metrics import UNMATCHED, GatewayMetrics
from gateway.openapi import build_openapi
from gateway.settings import GatewaySettings
from services.common import paging
from services.common.channels import channel as make_channel
from services.common.identity import IDENTITY_HEADER, IdentityError, parse_identity
from services.common.logging import get_logger

log = get_logger(__name__)

API_PREFIX = "/api/"
OPENAPI_PATH = "/api/hooks/v1/openapi.json"
#: HTTP headers passed on to the services as gRPC metadata.
FORWARDED_HEADERS = (IDENTITY_HEADER, "traceparent", "tracestate")

#: The generic client of one method (Gateway.callable_for).
MultiCallable: TypeAlias = grpc.aio.UnaryUnaryMultiCallable | grpc.aio.UnaryStreamMultiCallable

GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("gateway")
#: The route template a request matched, for the metrics' labels.
ROUTE_LABEL = web.RequestKey("route_label", str)


def default_targets(settings: GatewaySettings) -> dict[str, str]:
    """The gRPC target of each proto package prefix."""
    return {
        "hooks.registry": settings.registry_target,
        "hooks.sender": settings.sender_target,
        "hooks.matcher": settings.matcher_target,
    }


@dataclass
class Gateway:
    settings: GatewaySettings
    routes: list[Route]
    openapi: dict
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    callables: dict[tuple[str, str], MultiCallable] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.router = Router(self.routes)
        self.openapi_body = json_body(self.openapi)

    def channel(self, target: str) -> grpc.aio.Channel:
        if target not in self.channels:
            self.channels[target] = make_channel(target, self.settings.grpc_max_message_bytes, tls=self.settings.tls)
        return self.channels[target]

    def callable_for(self, route: Route) -> MultiCallable:
        """The generic client of the route's method: its path and message classes, nothing generated."""
        key = (route.target, route.grpc_path)
        if key not in self.callables:
            channel = self.channel(route.target)
            make = channel.unary_stream if route.server_streaming else channel.unary_unary
            self.callables[key] = make(
                route.grpc_path,
                request_serializer=route.request_class.SerializeToString,
                response_deserializer=route.response_class.FromString,
            )
        return self.callables[key]

    def fronted_services(self) -> dict[str, grpc.aio.Channel]:
        """Each gRPC service behind a route, with the channel to its target."""
        services: dict[str, grpc.aio.Channel] = {}
        for route in self.routes:
            services.setdefault(route.method.containing_service.full_name, self.channel(route.target))
        return services

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))
        self.channels.clear()
        self.callables.clear()


# -- middlewares --------------------------------------------------------------------------------


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts and times every request by its route template (see gateway.metrics)."""
    gateway = request.app[GATEWAY_KEY]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away, or the gateway is stopping
        raise
    finally:
        label = request.get(ROUTE_LABEL)
        if label is None:
            resource = request.match_info.route.resource
            label = (
                resource.canonical if resource is not None and request.match_info.http_exception is None else UNMATCHED
            )
        gateway.metrics.observe(request.method, label, status, time.perf_counter() - started)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as a google.rpc.Status JSON body, whoever raised it."""
    try:
        return await handler(request)
    except GatewayError as error:
        return error.response()
    except web.HTTPRequestEntityTooLarge:
        return _too_large(request.app[GATEWAY_KEY].settings).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: code_pb2.NOT_FOUND, 405: code_pb2.UNIMPLEMENTED}.get(exc.status, code_pb2.UNKNOWN)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return GatewayError(exc.status, code, exc.reason, headers=headers).response()
    except Exception:
        log.exception("gateway error", method=request.method, path=request.path)
        return GatewayError(500, code_pb2.INTERNAL, "internal error in the gateway").response()


@web.middleware
async def identity_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Calls under /api/ need a readable x-rh-identity (not the API's document and reference page);
    the services decide what it may see."""
    if request.path.startswith(API_PREFIX) and not _public(request.path):
        try:
            parse_identity(request.headers.get(IDENTITY_HEADER))
        except IdentityError as exc:
            raise GatewayError(401, code_pb2.UNAUTHENTICATED, str(exc)) from None
    return await handler(request)


def _public(path: str) -> bool:
    """The API's description, which a browser reads without an identity: the document and its page."""
    return path == OPENAPI_PATH or path == docs.DOCS_PATH or path.startswith(docs.ASSETS_PATH + "/")


def _too_large(settings: GatewaySettings) -> GatewayError:
    limit = settings.gateway_max_body_bytes
    return GatewayError(413, code_pb2.RESOURCE_EXHAUSTED, f"the request body is larger than {limit} bytes")


# -- handlers -----------------------------------------------------------------------------------


async def transcode(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY_KEY]
    settings = gateway.settings
    request[ROUTE_LABEL] = UNMATCHED
    found = gateway.router.find(request.method, request.rel_url.raw_path)
    if not isinstance(found, routes_module.Match):
        if not found:
            raise GatewayError(404, code_pb2.NOT_FOUND, f"no route for {request.path}")
        raise GatewayError(
            405,
            code_pb2.UNIMPLEMENTED,
            f"{request.method} is not allowed on {request.path}",
            headers={"Allow": ", ".join(found)},
        )
    route = found.route
    request[ROUTE_LABEL] = route.template.template
    if request.content_length is not None and request.content_length > settings.gateway_max_body_bytes:
        raise _too_large(settings)
    body = await request.read() if request.can_read_body else b""
    query: dict[str, list[str]] = {}
    for key, value in request.rel_url.query.items():
        query.setdefault(key, []).append(value)
    message = transcoder.build_request(route, found.variables, query, body)
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
    metadata = [("x-request-id", request_id)]
    metadata += [(name, request.headers[name]) for name in FORWARDED_HEADERS if name in request.headers]
    call = gateway.callable_for(route)
    if route.server_streaming:
        sse.resume_from_last_event_id(request, message)
        stream = call(message, metadata=metadata)
        channel = gateway.channel(route.target)
        return await sse.stream_events(
            request,
            stream,
            lambda m: transcoder.render(route, m),
            settings.gateway_keepalive_seconds,
            connected=lambda: channel.get_state() == grpc.ChannelConnectivity.READY,
        )
    try:
        answer = await call(message, metadata=metadata, timeout=settings.gateway_call_timeout_seconds)
    except grpc.aio.AioRpcError as error:
        response = rpc_error_response(error)
        response.headers["x-request-id"] = request_id
        if response.status >= 500:
            log.warning("call failed", route=route.operation_id, code=error.code().name, request_id=request_id)
        return response
    return web.Response(
        body=json_body(transcoder.render(route, answer)),
        content_type="application/json",
        headers={"x-request-id": request_id},
    )


async def openapi_handler(request: web.Request) -> web.Response:
    return web.Response(body=request.app[GATEWAY_KEY].openapi_body, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=json_body({"status": "SERVING"}), content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY_KEY]
    statuses = await check_services(gateway.fronted_services(), gateway.settings.gateway_readiness_timeout_seconds)
    not_serving = [name for name, status in statuses.items() if status != "SERVING"]
    return web.Response(
        body=json_body(
            {"status": "NOT_SERVING" if not_serving else "SERVING", "services": statuses, "notServing": not_serving}
        ),
        status=503 if not_serving else 200,
        content_type="application/json",
    )


async def metrics_handler(request: web.Request) -> web.Response:
    body, content_type = request.app[GATEWAY_KEY].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


def build_metrics_app(app: web.Application) -> web.Application:
    """/metrics of the gateway `app`, to serve on the metrics port (HOOKS_METRICS_ADDRESS and
    HOOKS_METRICS_PORT): the public port has no /metrics, so callers from outside never read it."""
    metrics_app = web.Application()
    metrics_app[GATEWAY_KEY] = app[GATEWAY_KEY]
    metrics_app.router.add_get("/metrics", metrics_handler)
    return metrics_app


# -- assembly -----------------------------------------------------------------------------------


def build_gateway(
    settings: GatewaySettings,
    files: Iterable[_descriptor.FileDescriptor] | None = None,
    targets: Mapping[str, str] | None = None,
    descriptor_sets: Iterable[descriptor_pb2.FileDescriptorSet] | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> Gateway:
    """The routes and OpenAPI document of the files (default: the hooks services' modules)."""
    files = list(files) if files is not None else routes_module.default_file_descriptors()
    all_targets = {**default_targets(settings), **(targets or {})}
    routes = routes_module.build_routes(files, all_targets)
    if descriptor_sets is None:
        descriptor_sets = [proto_comments.hooks_descriptor_set()]
    comments = proto_comments.load_comments(descriptor_sets)
    document = build_openapi(routes, comments, max_page_size=paging.MAX_PAGE_SIZE)
    log.info("gateway routes built", routes=len(routes), described=len(comments))
    return Gateway(settings=settings, routes=routes, openapi=document, metrics=GatewayMetrics(metrics_registry))


def build_app(
    settings: GatewaySettings,
    files: Iterable[_descriptor.FileDescriptor] | None = None,
    targets: Mapping[str, str] | None = None,
    descriptor_sets: Iterable[descriptor_pb2.FileDescriptorSet] | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> web.Application:
    """The app; `files`, `targets` and `descriptor_sets` (for the descriptions) add to or replace
    what it fronts (tests, tools);
    `metrics_registry` defaults to one of the app's own."""
    gateway = build_gateway(settings, files, targets, descriptor_sets, metrics_registry)
    app = web.Application(
        middlewares=[metrics_middleware, error_middleware, identity_middleware],
        client_max_size=settings.gateway_max_body_bytes,
    )
    app[GATEWAY_KEY] = gateway
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get(OPENAPI_PATH, openapi_handler)
    docs.add_docs_routes(app)
    console.add_routes(app, settings)
    # Any path, whatever it holds once decoded (a percent-encoded line break too): the router says 404.
    app.router.add_route("*", r"/{tail:[\s\S]*}", transcode)

    async def close(_app: web.Application) -> None:
        await gateway.close()

    app.on_cleanup.append(close)
    return app
