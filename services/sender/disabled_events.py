"""Disabling an endpoint and telling its owner: an `endpoint-disabled` event of the built-in
application `hooks`, published to the incoming topic like any application's event, so it reaches the
owner through the owner's own filters.

The decision is durable before anything else happens: the event is written to the outbox
(services/sender/outbox.py) unconfirmed, then the registry is asked to disable the endpoint. If this
sender changed it, the row is confirmed and published until the broker acknowledges it; if it was
already disabled, the row is dropped (the sender that disabled it tells the owner). A sender that dies
in between, or a registry that does not answer, leaves the row unconfirmed: after
`UNCONFIRMED_SECONDS` any sender on the database disables the endpoint again (idempotent) and
publishes the event (it cannot tell whether the earlier call landed, so it publishes either way).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc

from hooks.registry.v1 import routing_pb2, routing_pb2_grpc
from hooks_client.envelope import incoming_json
from services.common import builtin_application
from services.common.logging import get_logger
from services.sender.outbox import Outbox, OutboxRow

log = get_logger(__name__)

#: How long an unconfirmed decision waits for its sender before any sender carries it out.
UNCONFIRMED_SECONDS = 30.0
REGISTRY_TIMEOUT_SECONDS = 10.0


def endpoint_disabled_event(
    event_id: str, account_id: str, endpoint_id: str, endpoint_name: str, reason: str, at: datetime | None = None
) -> bytes:
    """The incoming message's checked JSON bytes (the one envelope of hooks_client)."""
    return incoming_json(
        identity=event_id,
        application=builtin_application.NAME,
        event_type=builtin_application.ENDPOINT_DISABLED,
        level="",
        account_id=account_id,
        timestamp=at or datetime.now(UTC),
        message={"endpoint_id": endpoint_id, "endpoint_name": endpoint_name, "reason": reason},
    )


class EndpointDisabler:
    """Disables endpoints in the registry and tells their owners through the outbox."""

    def __init__(self, outbox: Outbox, routing: routing_pb2_grpc.RoutingServiceStub):
        self.outbox = outbox
        self.routing = routing
        outbox.complete = self._complete

    async def disable(self, account_id: str, endpoint_id: str, endpoint_name: str, reason: str) -> bool:
        """Disables the endpoint; True when this sender changed it (its owner will hear of it), False
        when it was disabled already. A registry error is logged and left to the outbox to finish."""
        event_id = str(uuid.uuid4())
        row_id = await self.outbox.add(
            event_id=event_id,
            account_id=account_id,
            endpoint_id=endpoint_id,
            reason=reason,
            payload=endpoint_disabled_event(event_id, account_id, endpoint_id, endpoint_name, reason),
            confirmed=False,
            available_in_seconds=UNCONFIRMED_SECONDS,
        )
        try:
            changed = await self._disable_in_registry(endpoint_id, reason)
        except grpc.aio.AioRpcError as exc:
            log.error("could not disable endpoint; retried later", endpoint_id=endpoint_id, code=exc.code().name)
            return False
        log.warning("endpoint disabled", endpoint_id=endpoint_id, reason=reason, changed=changed)
        if changed:
            await self.outbox.confirm(row_id)
        else:
            await self.outbox.drop(row_id)
        return changed

    async def _disable_in_registry(self, endpoint_id: str, reason: str) -> bool:
        response = await self.routing.DisableEndpoint(
            routing_pb2.DisableEndpointRequest(endpoint_id=endpoint_id, reason=reason),
            timeout=REGISTRY_TIMEOUT_SECONDS,
        )
        return response.changed

    async def _complete(self, row: OutboxRow) -> bool:
        """An unconfirmed decision whose sender did not finish it: disable now (raises when the
        registry does not answer). An endpoint deleted since needs no event."""
        try:
            await self._disable_in_registry(row.endpoint_id, row.reason)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return True
