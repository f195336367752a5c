"""RoutingService: the internal calls of the matcher and the sender (no identity; the account is a field)."""

from __future__ import annotations

from hooks.registry.v1 import routing_pb2, routing_pb2_grpc
from services.common.errors import FieldViolations, abort, abort_invalid
from services.registry import endpoints
from services.registry.change_log import ChangeFollower
from services.registry.database import APPLICATION, ENDPOINT, FILTER, Database
from services.registry.messages import delivery_target, endpoint_message
from services.registry.problems import Problem, answers_problems, raise_if
from services.registry.routes import RouteResolver

SERVICE_NAME = routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].full_name
KINDS = {
    APPLICATION: routing_pb2.RESOURCE_KIND_APPLICATION,
    ENDPOINT: routing_pb2.RESOURCE_KIND_ENDPOINT,
    FILTER: routing_pb2.RESOURCE_KIND_FILTER,
}
MAX_REF = 100


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    def __init__(self, database: Database, resolver: RouteResolver, follower: ChangeFollower, poll_seconds: float):
        self.database = database
        self.resolver = resolver
        self.follower = follower
        self.poll_seconds = poll_seconds

    @answers_problems
    async def ResolveRoutes(self, request, context):
        violations = FieldViolations()
        for name in ("account_id", "application", "event_type"):
            value = getattr(request, name)
            if not value:
                violations.add(name, "is required")
            elif len(value) > MAX_REF:
                violations.add(name, f"must be at most {MAX_REF} characters")
        if len(request.level) > MAX_REF:
            violations.add("level", f"must be at most {MAX_REF} characters")
        raise_if(violations)
        return await self.resolver.resolve(request.account_id, request.application, request.event_type, request.level)

    async def WatchChanges(self, request, context):
        """A heartbeat with the sequence the stream starts after, then every change after it, as committed."""
        after = request.after_sequence
        if after < 0:
            await abort_invalid(context, [("after_sequence", "must not be negative (0 means from now on)")])
        try:
            if after == 0:
                after = await self.follower.current_sequence()
            else:
                await self.follower.check_resumable(after)
        except Problem as exc:
            await abort(context, exc.code, str(exc))
        yield routing_pb2.WatchChangesResponse(sequence=after, heartbeat=True)
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
            if not rows:
                await self.follower.wait_beyond(after, timeout=max(self.poll_seconds * 4, 1.0))

    @answers_problems
    async def GetDeliveryTarget(self, request, context):
        row = await endpoints.delivery_target(self.database, request.endpoint_id)
        return routing_pb2.GetDeliveryTargetResponse(endpoint=delivery_target(row), account_id=row.account_id)

    @answers_problems
    async def DisableEndpoint(self, request, context):
        row, changed = await endpoints.disable_endpoint(self.database, request.endpoint_id, request.reason)
        return routing_pb2.DisableEndpointResponse(endpoint=endpoint_message(row), changed=changed)
