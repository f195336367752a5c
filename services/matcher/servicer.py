"""hooks.matcher.v1.MatcherService: publishing without a Kafka client, and a dry-run match.

Both are scoped to the caller's account (x-rh-identity) and check, like the consumer does, that the
application, event type and level are registered (INVALID_ARGUMENT naming the field when not).
PublishMessage enforces the limits the consumer does (services.common.limits: names and ids, and a
`message` within the nesting depth, with finite numbers) and the event type's JSON Schema
(services.matcher.schemas: INVALID_ARGUMENT naming `message` and the JSON pointer of the first error),
so what it accepts is never dead-lettered for them; the gateway's POST /api/hooks/v1/messages is this call.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
from google.protobuf import json_format

from hooks.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from hooks.registry.v1 import routing_pb2
from hooks_client.envelope import Rejected, incoming_json
from hooks_client.kafka import RecordProducer
from services.common.errors import FieldViolations, abort, abort_invalid
from services.common.identity import require_account
from services.common.limits import json_value_problem, string_problem
from services.common.logging import get_logger
from services.common.settings import KafkaSettings
from services.matcher.route_cache import RegistryFailed, RegistryRejected, RouteCache
from services.matcher.schemas import SchemaValidators
from services.matcher.validation import unregistered

log = get_logger(__name__)


def _check_names(
    request: matcher_pb2.PublishMessageRequest | matcher_pb2.MatchMessageRequest, violations: FieldViolations
) -> None:
    for field in ("application", "event_type", "level"):
        problem = string_problem(field, getattr(request, field))
        if problem:
            violations.add(field, problem)


class MatcherServicer(matcher_pb2_grpc.MatcherServiceServicer):
    def __init__(
        self,
        routes: RouteCache,
        producer: RecordProducer,
        kafka: KafkaSettings,
        max_message_bytes: int,
        *,
        schemas: SchemaValidators,
    ):
        """`schemas` checks a published message against its event type's JSON Schema, as the consumer does."""
        self._routes = routes
        self._schemas = schemas
        self._producer = producer
        self._kafka = kafka
        self._max_message_bytes = max_message_bytes

    async def _registered_routes(
        self,
        context: grpc.aio.ServicerContext,
        account: str,
        application: str,
        event_type: str,
        level: str,
        *,
        with_endpoints: bool = False,
    ) -> routing_pb2.ResolveRoutesResponse:
        """The registry's uncached answer; INVALID_ARGUMENT naming the field when something is not registered."""
        try:
            response = await self._routes.resolve_uncached(
                account, application, event_type, level, with_endpoints=with_endpoints
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.details() or "invalid request")
            await abort(context, grpc.StatusCode.UNAVAILABLE, "the registry is unavailable; try again")
        if not response.registered:
            rejected = unregistered(response.unregistered, response.reason, application, event_type, level)
            await abort_invalid(context, [(rejected.field, rejected.description)])
        return response

    async def PublishMessage(
        self, request: matcher_pb2.PublishMessageRequest, context: grpc.aio.ServicerContext
    ) -> matcher_pb2.PublishMessageResponse:
        account = await require_account(context)
        violations = FieldViolations()
        _check_names(request, violations)
        if request.id:
            problem = string_problem("id", request.id)
            if problem:
                violations.add("id", problem)
        message = None
        if not request.HasField("message"):
            violations.add("message", "field 'message' is required (any JSON value)")
        else:
            try:
                message = json_format.MessageToDict(request.message)
            except (ValueError, TypeError, RecursionError):  # e.g. NaN or Infinity, which JSON cannot hold
                violations.add("message", "field 'message' is not a JSON value: numbers must be finite")
            else:
                problem = json_value_problem(message)
                if problem:
                    violations.add("message", problem)
        if request.HasField("timestamp"):
            try:
                timestamp = request.timestamp.ToDatetime(tzinfo=UTC)
            except (ValueError, OverflowError):
                violations.add("timestamp", "field 'timestamp' is out of range")
        else:
            timestamp = datetime.now(UTC)
        if violations:
            await abort_invalid(context, violations)
        key = (account, request.application, request.event_type, request.level)
        routes = await self._registered_routes(context, *key)
        identity = request.id or str(uuid.uuid4())
        try:
            await self._schemas.check(key, routes.schema_version, message)
            body = incoming_json(
                identity=identity,
                application=request.application,
                event_type=request.event_type,
                level=request.level,
                account_id=account,
                timestamp=timestamp,
                message=message,
                max_bytes=self._max_message_bytes,
            )
        except Rejected as rejected:  # the schema, the envelope's own rules (size...): what the consumer would refuse
            await abort_invalid(context, [(rejected.field or "message", rejected.description)])
        except (RegistryRejected, RegistryFailed):  # asking for a schema not compiled yet
            await abort(context, grpc.StatusCode.UNAVAILABLE, "the registry is unavailable; try again")
        try:
            record = await self._producer.send(self._kafka.topic, body, key=account.encode(), id=identity)
        except Exception as exc:  # noqa: BLE001 - the broker did not acknowledge it
            log.warning("publish failed", error=str(exc))
            await abort(context, grpc.StatusCode.UNAVAILABLE, "the message could not be published; try again")
        log.info("message published", id=identity, partition=record.partition, offset=record.offset)
        return matcher_pb2.PublishMessageResponse(
            id=identity, topic=record.topic, partition=record.partition, offset=record.offset
        )

    async def MatchMessage(
        self, request: matcher_pb2.MatchMessageRequest, context: grpc.aio.ServicerContext
    ) -> matcher_pb2.MatchMessageResponse:
        account = await require_account(context)
        violations = FieldViolations()
        _check_names(request, violations)
        if violations:
            await abort_invalid(context, violations)
        response = await self._registered_routes(
            context, account, request.application, request.event_type, request.level, with_endpoints=True
        )
        return matcher_pb2.MatchMessageResponse(routes=response.routes)
