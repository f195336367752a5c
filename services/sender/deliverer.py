"""One attempt of one delivery, start to finish: take the lease, look the endpoint up, format, send,
judge the outcome, log the attempt and schedule what comes next; disable an endpoint that answered
410 or has failed for too long, and tell its owner."""

from __future__ import annotations

import binascii
import contextlib
import json
import logging
import time
from datetime import datetime, timedelta

import grpc
import structlog
from standardwebhooks.webhooks import EmptyWebhookSecretError

from hooks.registry.v1 import endpoints_pb2, routing_pb2, routing_pb2_grpc
from services.common.logging import get_logger
from services.sender import formatters, metrics
from services.sender.attempt_recorder import AttemptRecorder
from services.sender.conversion import delivery_to_proto
from services.sender.disabled_events import DisabledEventPublisher
from services.sender.models import Delivery, DeliveryState
from services.sender.retry_policy import RetrySchedule, Verdict
from services.sender.store import AttemptResult, DeliveryStore, QueuedDelivery, utcnow
from services.sender.targets import EndpointDeleted, Target, TargetCache
from services.sender.transports import HttpTransport, Outcome, SmtpTransport
from services.sender.watch_hub import WatchHub

log = get_logger(__name__)
#: Asked before the per-attempt debug line, so a production level skips building it at all.
_level_check = logging.getLogger(__name__)

#: When the registry cannot say where an endpoint is, ask again after this long (no attempt counted).
REGISTRY_RETRY_SECONDS = 5.0
USER_AGENT = "hooks-sender/1"
#: Headers an endpoint's extra headers may not set.
RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-type", "user-agent"}


class Deliverer:
    def __init__(
        self,
        store: DeliveryStore,
        recorder: AttemptRecorder,
        targets: TargetCache,
        routing: routing_pb2_grpc.RoutingServiceStub,
        http: HttpTransport,
        smtp: SmtpTransport,
        schedule: RetrySchedule,
        disable_after_seconds: float,
        publisher: DisabledEventPublisher,
        hub: WatchHub,
    ):
        self.store = store
        self.recorder = recorder
        self.targets = targets
        self.routing = routing
        self.http = http
        self.smtp = smtp
        self.schedule = schedule
        self.disable_after = timedelta(seconds=disable_after_seconds)
        self.publisher = publisher
        self.hub = hub
        self._metric_children: dict[tuple[int, Verdict], tuple] = {}

    def _metrics(self, endpoint_type: int, verdict: Verdict) -> tuple:
        """The attempt counter and latency histogram children for a type and outcome (labels()
        looks them up under a lock; once per kind is enough)."""
        children = self._metric_children.get((endpoint_type, verdict))
        if children is None:
            type_name = endpoints_pb2.EndpointType.Name(endpoint_type).removeprefix("ENDPOINT_TYPE_").lower()
            children = (
                metrics.ATTEMPTS.labels(type_name, verdict.value),
                metrics.ATTEMPT_SECONDS.labels(type_name),
            )
            self._metric_children[(endpoint_type, verdict)] = children
        return children

    def announce(self, delivery: Delivery | None) -> None:
        if delivery is not None and self.hub.wants(delivery.account_id):
            self.hub.publish(delivery.account_id, delivery_to_proto(delivery))

    async def deliver(
        self,
        delivery_id: str,
        stored: QueuedDelivery | None = None,
        slots: contextlib.AbstractAsyncContextManager | None = None,
    ) -> None:
        """Attempts the delivery once. `stored` is the delivery as Deliver stored it or the poller
        claimed it (leased to this sender): while most of that lease is left it is used as is, saving
        a claim. `slots` (the dispatcher's concurrency limits) is held only around the send."""
        if stored is not None and self.store.holds_fresh_lease(stored):
            delivery = stored
        else:
            delivery = await self.store.claim(delivery_id)
        if delivery is None:
            return  # another sender has it, or it is no longer due
        structlog.contextvars.bind_contextvars(delivery_id=delivery.id, message_id=delivery.event_id, account_id=delivery.account_id)
        try:
            target = await self.targets.get(delivery.endpoint_id)
        except EndpointDeleted:
            self.announce(await self.store.settle(delivery.id, DeliveryState.FAILED, "endpoint deleted"))
            return
        except grpc.aio.AioRpcError as exc:
            later = utcnow() + timedelta(seconds=REGISTRY_RETRY_SECONDS)
            error = f"registry unavailable: {exc.code().name}"
            self.announce(await self.store.settle(delivery.id, DeliveryState.PENDING, error, later))
            return
        if target.account_id != delivery.account_id:
            self.announce(await self.store.settle(delivery.id, DeliveryState.FAILED, "endpoint deleted"))
            return
        if not target.endpoint.enabled:
            self.announce(await self.store.settle(delivery.id, DeliveryState.FAILED, "endpoint disabled"))
            return

        async with slots or contextlib.nullcontext():
            started_at = utcnow()
            clock = time.perf_counter()
            outcome = await self._send(delivery, target, started_at)
            latency = time.perf_counter() - clock
        number = delivery.attempt_count + 1
        attempts_metric, seconds_metric = self._metrics(target.endpoint.type, outcome.verdict)
        attempts_metric.inc()
        seconds_metric.observe(latency)

        status, next_at, error = DeliveryState.FAILED, None, outcome.error
        if outcome.verdict is Verdict.SUCCEEDED:
            status = DeliveryState.SUCCEEDED
        elif outcome.verdict is Verdict.RETRY:
            delay = self.schedule.next_delay(number, outcome.retry_after)
            if delay is None:
                error = f"{outcome.error} (gave up after {number} attempts)"
            else:
                status, next_at = DeliveryState.PENDING, utcnow() + timedelta(seconds=delay)
        result = AttemptResult(
            delivery_id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            number=number,
            started_at=started_at,
            latency_seconds=latency,
            http_status=outcome.http_status,
            response_body=outcome.response_body,
            error=error,
            succeeded=outcome.verdict is Verdict.SUCCEEDED,
            status=status,
            next_attempt_at=next_at,
        )
        failing_since = await self.recorder.record(result)
        # A failed attempt is worth a line at info; a success only at debug (the hot path's level).
        failed = status is not DeliveryState.SUCCEEDED
        if failed or _level_check.isEnabledFor(logging.DEBUG):
            (log.info if failed else log.debug)(
                "delivery attempt",
                delivery_id=delivery.id,
                endpoint_id=delivery.endpoint_id,
                attempt=number,
                http_status=outcome.http_status,
                status=status.value,
                error=error or None,
                latency_ms=round(latency * 1000, 1),
            )
        if self.hub.wants(delivery.account_id):
            self.announce(
                delivery.as_row(
                    status=status.value,
                    attempt_count=number,
                    next_attempt_at=next_at,
                    last_error=error,
                    updated_at=utcnow(),
                )
            )

        if outcome.verdict is Verdict.GONE:
            metrics.ENDPOINTS_DISABLED.labels("gone").inc()
            await self.disable_endpoint(delivery.endpoint_id, target, "the endpoint answered 410 Gone")
        elif failing_since is not None and utcnow() - failing_since >= self.disable_after:
            reason = f"deliveries failed for longer than {_human(self.disable_after)} (since {failing_since:%Y-%m-%d %H:%M:%S} UTC)"
            metrics.ENDPOINTS_DISABLED.labels("failing").inc()
            await self.disable_endpoint(delivery.endpoint_id, target, reason)
            if status is DeliveryState.PENDING:
                self.announce(
                    await self.store.settle(delivery.id, DeliveryState.FAILED, f"endpoint disabled: {reason}")
                )

    async def _send(self, delivery: QueuedDelivery, target: Target, now: datetime) -> Outcome:
        endpoint = target.endpoint
        event = delivery.event  # its JSON text: a webhook sends it as it is
        if endpoint.type == endpoints_pb2.ENDPOINT_TYPE_EMAIL:
            message = formatters.email(json.loads(event), delivery.id, self.smtp.settings.sender, endpoint.target)
            return await self.smtp.send(message)
        if not endpoint.target.lower().startswith(("http://", "https://")):
            return Outcome(Verdict.FAILED, error="the endpoint's target is not an http(s) URL")
        try:
            request = formatters.http_request(endpoint.type, event, delivery.id, endpoint.secret, now)
        except (EmptyWebhookSecretError, binascii.Error):
            return Outcome(Verdict.FAILED, error="the endpoint has no usable signing secret")
        except ValueError as exc:
            return Outcome(Verdict.FAILED, error=str(exc))
        if endpoint.headers:
            own = {name.lower() for name in request.headers}
            headers = {
                name: value
                for name, value in endpoint.headers.items()
                if name.lower() not in own and name.lower() not in RESERVED_HEADERS
            }
            headers.update(request.headers)
        else:
            headers = request.headers
        headers["user-agent"] = USER_AGENT
        if delivery.traceparent:
            headers["traceparent"] = delivery.traceparent
        return await self.http.post(endpoint.target, request.body, headers, endpoint.ca_certificate)

    async def disable_endpoint(self, endpoint_id: str, target: Target, reason: str) -> None:
        """Disables the endpoint in the registry; its owner hears of it once (the replica that
        actually changed it publishes the event)."""
        try:
            response = await self.routing.DisableEndpoint(
                routing_pb2.DisableEndpointRequest(endpoint_id=endpoint_id, reason=reason), timeout=10
            )
        except grpc.aio.AioRpcError as exc:
            log.error("could not disable endpoint", endpoint_id=endpoint_id, code=exc.code().name)
            return
        finally:
            self.targets.drop(endpoint_id)
        log.warning("endpoint disabled", endpoint_id=endpoint_id, reason=reason, changed=response.changed)
        if response.changed:
            await self.publisher.publish(target.account_id, endpoint_id, target.endpoint.name, reason)


def _human(period: timedelta) -> str:
    seconds = period.total_seconds()
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds * 1000:g} ms"
