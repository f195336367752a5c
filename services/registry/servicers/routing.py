"""RoutingService: the internal calls of the matcher and the sender (no identity; the account is a field)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from hooks.registry.v1 import routing_pb2, routing_pb2_grpc
from services.common.errors import FieldViolations
from services.common.limits import string_problem
from services.registry import endpoints
from services.registry.change_log import ChangeFollower
from services.registry.database import APPLICATION, ENDPOINT, FILTER, Database
from services.registry.messages import delivery_target, endpoint_message, previous_secret
from services.registry.routes import RouteResolver

SERVICE_NAME = routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].full_name
KINDS = {
    APPLICATION: routing_pb2.RESOURCE_KIND_APPLICATION,
    ENDPOINT: routing_pb2.RESOURCE_KIND_ENDPOINT,
    FILTER: routing_pb2.RESOURCE_KIND_FILTER,
}
#: The fields of a ResolveRoutesRequest that name an event's parts, checked as every entry checks them.
EVENT_FIELDS = ("account_id", "application", "event_type", "level")


@dataclass
class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    database: Database
    #: Answers ResolveRoutes.
    resolver: RouteResolver
    #: The change log WatchChanges streams.
    follower: ChangeFollower
    #: HOOKS_REGISTRY_CHANGE_POLL_SECONDS: a WatchChanges stream with nothing new rereads the log after
    #: four times this (at least a second), when no commit wakes it first.
    poll_seconds: float

    async def ResolveRoutes(
        self, request: routing_pb2.ResolveRoutesRequest, context: grpc.aio.ServicerContext
    ) -> routing_pb2.ResolveRoutesResponse:
        # Checked before anything reaches the database: a value no event may hold (a NUL, which
        # PostgreSQL's text cannot carry) is the caller's mistake, never an outage.
        violations = FieldViolations()
        for name in EVENT_FIELDS:
            problem = string_problem(name, getattr(request, name))
            if problem:
                violations.add(name, problem)
        if violations:
            raise violations
        return await self.resolver.resolve(
            request.account_id,
            request.application,
            request.event_type,
            request.level,
            with_endpoints=request.with_endpoints,
            with_schema=request.with_schema,
        )

    async def WatchChanges(
        self, request: routing_pb2.WatchChangesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[routing_pb2.WatchChangesResponse]:
        """A heartbeat with the sequence the stream starts after, then every change after it, as committed."""
        after = request.after_sequence
        if after < 0:
            raise FieldViolations([("after_sequence", "must not be negative (0 means from now on)")])
        if after == 0:
            after = await self.follower.current_sequence()
        else:
            await self.follower.check_resumable(after)
        yield routing_pb2.WatchChangesResponse(sequence=after, heartbeat=True)
        async with self.follower.stream(after) as sent:  # writes wait for what is sent here
            while not context.done() and not self.follower.closing:
                rows = await self.follower.read_after(after)
                for row in rows:
                    yield routing_pb2.WatchChangesResponse(
                        sequence=row.sequence,
                        kind=KINDS.get(row.kind, routing_pb2.RESOURCE_KIND_UNSPECIFIED),
                        resource_id=row.resource_id,
                        account_id=row.account_id,
                    )
                    after = row.sequence
                if rows:
                    await sent(after)
                else:
                    await self.follower.wait_beyond(after, timeout=max(self.poll_seconds * 4, 1.0))

    async def GetDeliveryTarget(
        self, request: routing_pb2.GetDeliveryTargetRequest, context: grpc.aio.ServicerContext
    ) -> routing_pb2.GetDeliveryTargetResponse:
        row = await endpoints.delivery_target(self.database, request.endpoint_id)
        return routing_pb2.GetDeliveryTargetResponse(
            endpoint=delivery_target(row), account_id=row.account_id, previous_secret=previous_secret(row)
        )

    async def DisableEndpoint(
        self, request: routing_pb2.DisableEndpointRequest, context: grpc.aio.ServicerContext
    ) -> routing_pb2.DisableEndpointResponse:
        row, changed = await endpoints.disable_endpoint(self.database, request.endpoint_id, request.reason)
        return routing_pb2.DisableEndpointResponse(endpoint=endpoint_message(row), changed=changed)
