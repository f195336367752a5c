"""A real registry for any test: `async with running_registry(database_url) as (server, port): ...`

It migrates the database, registers the built-in `hooks` application, and serves on 127.0.0.1:<port>
until the block ends. Talk to it with services.common.channels.channel(f"127.0.0.1:{port}").
Settings may be overridden by keyword, e.g. registry_change_poll_seconds=0.05. Targets on loopback
are allowed (`sender_allowed_networks`, as the senders of the tests allow them: the receivers live
there); pass sender_allowed_networks="" for the production default.

`Registry` is the registry tests' client: stubs with shortcuts for creating things; `expect_error` and
`expect_invalid` assert on what a call is refused with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import pytest

from hooks.registry.v1 import (
    applications_pb2 as apps_pb,
)
from hooks.registry.v1 import (
    applications_pb2_grpc,
    endpoints_pb2_grpc,
    filters_pb2_grpc,
    routing_pb2_grpc,
)
from hooks.registry.v1 import (
    endpoints_pb2 as ep_pb,
)
from hooks.registry.v1 import (
    filters_pb2 as f_pb,
)
from services.common.errors import field_violations_of
from services.common.identity import identity_metadata
from services.common.server import GrpcServer
from services.registry.server import build_server
from services.registry.settings import RegistrySettings

#: The network the tests' receivers listen on, which their registries and senders allow.
LOOPBACK = "127.0.0.0/8"


@asynccontextmanager
async def running_registry(database_url: str, **settings) -> AsyncIterator[tuple[GrpcServer, int]]:
    settings.setdefault("sender_allowed_networks", LOOPBACK)
    server = await build_server(
        RegistrySettings(registry_database_url=database_url, shutdown_grace_seconds=0.5, **settings)
    )
    port = await server.start("127.0.0.1:0")
    try:
        yield server, port
    finally:
        await server.stop(0.5)


def policies(*levels: str, more: tuple[apps_pb.EventType, ...] = ()) -> apps_pb.Application:
    """The seed's example application: `policies`, its event type `policy-triggered` with `levels`
    (ids; titles capitalised), and `more` event types."""
    return apps_pb.Application(
        name="policies",
        title="Policies",
        event_types=[
            apps_pb.EventType(
                id="policy-triggered",
                title="Policy triggered",
                levels=[apps_pb.Level(id=level, title=level.title()) for level in levels],
            ),
            *more,
        ],
    )


@dataclass
class Registry:
    port: int
    server: object
    channel: grpc.aio.Channel

    def __post_init__(self):
        self.apps = applications_pb2_grpc.ApplicationServiceStub(self.channel)
        self.endpoints = endpoints_pb2_grpc.EndpointServiceStub(self.channel)
        self.filters = filters_pb2_grpc.FilterServiceStub(self.channel)
        self.routing = routing_pb2_grpc.RoutingServiceStub(self.channel)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def register(
        self, name: str, title: str = "", event_types=None, *, allow_removals: bool = False
    ) -> apps_pb.RegisterApplicationResponse:
        """event_types: [(id, [level ids])]; `allow_removals` as in RegisterApplicationRequest."""
        app = apps_pb.Application(name=name, title=title or name.title())
        for et_id, levels in event_types or []:
            app.event_types.add(
                id=et_id, title=et_id.title(), levels=[apps_pb.Level(id=lv, title=lv.title()) for lv in levels]
            )
        return await self.apps.RegisterApplication(
            apps_pb.RegisterApplicationRequest(application=app, allow_removals=allow_removals)
        )

    async def endpoint(self, account: str, name: str, **fields) -> ep_pb.Endpoint:
        fields.setdefault("type", ep_pb.ENDPOINT_TYPE_WEBHOOK)
        fields.setdefault("target", f"https://hooks.example.com/{name}")
        fields.setdefault("enabled", True)
        response = await self.endpoints.CreateEndpoint(
            ep_pb.CreateEndpointRequest(endpoint=ep_pb.Endpoint(name=name, **fields)),
            metadata=identity_metadata(account),
        )
        return response.endpoint

    async def filter(self, account: str, endpoint_ids, **fields) -> f_pb.Filter:
        fields.setdefault("enabled", True)
        if "event_types" in fields:
            fields["event_types"] = [f_pb.EventTypeRef(application=a, event_type=e) for a, e in fields["event_types"]]
        if "levels" in fields:
            fields["levels"] = [f_pb.LevelRef(application=a, event_type=e, level=lv) for a, e, lv in fields["levels"]]
        response = await self.filters.CreateFilter(
            f_pb.CreateFilterRequest(filter=f_pb.Filter(endpoint_ids=list(endpoint_ids), **fields)),
            metadata=identity_metadata(account),
        )
        return response.filter


async def expect_error(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """Awaits `call`, asserting it fails with `code`; returns the error."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, (info.value.code(), info.value.details())
    return info.value


async def expect_invalid(call, *fields: str) -> dict[str, str]:
    """Awaits `call`, asserting INVALID_ARGUMENT naming (at least) `fields`; returns field -> description."""
    error = await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT)
    violations = dict(field_violations_of(error))
    for field in fields:
        assert field in violations, (field, violations)
    return violations
