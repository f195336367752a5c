"""hooks.matcher.v1.MatcherService: publishing without a Kafka client, and a dry-run match.

Both are scoped to the caller's account (x-rh-identity) and check, like the consumer does, that the
application, event type and level are registered (INVALID_ARGUMENT naming the field when not).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import grpc
from google.protobuf import json_format
from hooks.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from hooks.registry.v1 import routing_pb2

from services.common.errors import FieldViolations, abort, abort_invalid
from services.common.identity import require_account
from services.common.logging import get_logger
from services.common.settings import KafkaSettings
from services.matcher.events import incoming_json
from services.matcher.producer import AsyncProducer
from services.matcher.routes import RouteCache
from services.matcher.validation import string_problem, unregistered

log = get_logger(__name__)


def _check_names(request, violations: FieldViolations) -> None:
    for field in ("application", "event_type", "level"):
        problem = string_problem(field, getattr(request, field))
        if problem:
            violations.add(field, problem[1])


class MatcherServicer(matcher_pb2_grpc.MatcherServiceServicer):
    def __init__(self, routes: RouteCache, producer: AsyncProducer, kafka: KafkaSettings, max_message_bytes: int):
        self._routes = routes
        self._producer = producer
        self._kafka = kafka
        self._max_message_bytes = max_message_bytes

    async def _registered_routes(
        self, context: grpc.aio.ServicerContext, account: str, application: str, event_type: str, level: str
    ) -> routing_pb2.ResolveRoutesResponse:
        """The registry's uncached answer; INVALID_ARGUMENT naming the field when something is not registered."""
        try:
            response = await self._routes.resolve_uncached(account, application, event_type, level)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.details() or "invalid request")
            await abort(context, grpc.StatusCode.UNAVAILABLE, "the registry is unavailable; try again")
        if not response.registered:
            rejected = unregistered(response.reason, application, event_type, level)
            await abort_invalid(context, [(rejected.field, rejected.description)])
        return response

    async def PublishMessage(self, request: matcher_pb2.PublishMessageRequest, context) -> matcher_pb2.PublishMessageResponse:
        account = await require_account(context)
        violations = FieldViolations()
        _check_names(request, violations)
        if request.id:
            problem = string_problem("id", request.id)
            if problem:
                violations.add("id", problem[1])
        if not request.HasField("message"):
            violations.add("message", "field 'message' is required (any JSON value)")
        if request.HasField("timestamp"):
            try:
                timestamp = request.timestamp.ToDatetime(tzinfo=timezone.utc)
            except (ValueError, OverflowError):
                violations.add("timestamp", "field 'timestamp' is out of range")
        else:
            timestamp = datetime.now(timezone.utc)
        if violations:
            await abort_invalid(context, violations)
        await self._registered_routes(context, account, request.application, request.event_type, request.level)
        identity = request.id or str(uuid.uuid4())
        body = incoming_json(
            identity=identity,
            application=request.application,
            event_type=request.event_type,
            level=request.level,
            account_id=account,
            timestamp=timestamp,
            message=json_format.MessageToDict(request.message),
        )
        if len(body) > self._max_message_bytes:
            await abort_invalid(
                context, [("message", f"the message is {len(body)} bytes, larger than the limit of {self._max_message_bytes}")]
            )
        try:
            record = await self._producer.produce(self._kafka.topic, body, key=account.encode())
        except Exception as exc:  # noqa: BLE001 - the broker did not acknowledge it
            log.warning("publish failed", error=str(exc))
            await abort(context, grpc.StatusCode.UNAVAILABLE, "the message could not be published; try again")
        log.info("message published", id=identity, partition=record.partition(), offset=record.offset())
        return matcher_pb2.PublishMessageResponse(
            id=identity, topic=record.topic(), partition=record.partition(), offset=record.offset()
        )

    async def MatchMessage(self, request: matcher_pb2.MatchMessageRequest, context) -> matcher_pb2.MatchMessageResponse:
        account = await require_account(context)
        violations = FieldViolations()
        _check_names(request, violations)
        if violations:
            await abort_invalid(context, violations)
        response = await self._registered_routes(context, account, request.application, request.event_type, request.level)
        return matcher_pb2.MatchMessageResponse(routes=response.routes)
