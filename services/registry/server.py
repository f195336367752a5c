"""Builds the registry's gRPC server: migrations, the built-in application, the change follower,
the route cache, and the four services."""

from __future__ import annotations

from pathlib import Path

from hooks.registry.v1 import (
    applications_pb2_grpc,
    endpoints_pb2_grpc,
    filters_pb2_grpc,
    routing_pb2_grpc,
)
from services.common.db import upgrade_async
from services.common.logging import get_logger
from services.common.server import GrpcServer
from services.registry.applications import BUILTIN_APPLICATION, register_application
from services.registry.change_log import ChangeFollower
from services.registry.database import Database
from services.registry.endpoint_policy import EndpointPolicy
from services.registry.quotas import Quotas
from services.registry.routes import RouteResolver
from services.registry.servicers import applications, endpoints, filters, routing
from services.registry.settings import RegistrySettings

log = get_logger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_registry"


async def migrate(database_url: str) -> None:
    await upgrade_async(database_url, MIGRATIONS, version_table=VERSION_TABLE)


class RegistryServer(GrpcServer):
    """The registry's gRPC server, with what tests and tools look inside (e.g. to prune the change
    log now)."""

    registry: RegistryInternals


async def build_server(settings: RegistrySettings) -> RegistryServer:
    await migrate(settings.registry_database_url)
    database = Database(settings.registry_database_url)
    resolver = RouteResolver(database, max_accounts=settings.registry_route_cache_accounts)
    quotas = Quotas.of(settings)
    database.committed_listeners.append(resolver.changed)
    follower = ChangeFollower(
        database,
        poll_seconds=settings.registry_change_poll_seconds,
        retention_seconds=settings.registry_change_retention_seconds,
        prune_interval_seconds=settings.registry_change_prune_interval_seconds,
        on_changes=resolver.changed,
    )
    try:
        registered = await register_application(database, BUILTIN_APPLICATION, builtin=True, allow_removals=True)
        if registered.created:
            log.info("registered the built-in application", application=BUILTIN_APPLICATION.name)
        await follower.start()
    except BaseException:
        await follower.stop()
        await database.dispose()
        raise

    async def close() -> None:
        await follower.stop()
        await database.dispose()

    server = RegistryServer(
        "registry",
        settings,
        [
            (
                applications_pb2_grpc.add_ApplicationServiceServicer_to_server,
                applications.ApplicationServicer(database),
                applications.SERVICE_NAME,
            ),
            (
                endpoints_pb2_grpc.add_EndpointServiceServicer_to_server,
                endpoints.EndpointServicer(database, quotas=quotas, policy=EndpointPolicy.of(settings)),
                endpoints.SERVICE_NAME,
            ),
            (
                filters_pb2_grpc.add_FilterServiceServicer_to_server,
                filters.FilterServicer(database, quotas=quotas),
                filters.SERVICE_NAME,
            ),
            (
                routing_pb2_grpc.add_RoutingServiceServicer_to_server,
                routing.RoutingServicer(database, resolver, follower, settings.registry_change_poll_seconds),
                routing.SERVICE_NAME,
            ),
        ],
        on_stop=[close],
    )
    server.registry = RegistryInternals(database, resolver, follower)
    return server


class RegistryInternals:
    def __init__(self, database: Database, resolver: RouteResolver, follower: ChangeFollower):
        self.database = database
        self.resolver = resolver
        self.follower = follower
