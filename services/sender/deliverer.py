"""One attempt of one delivery, start to finish, in stages (`Deliverer.deliver`): prepare (take the
lease, look the endpoint up), attempt (format, send), judge (the outcome's next state), record (the
attempt recorder writes it in a batch), then what follows once recorded: the log line, the watchers,
disabling an endpoint that answered 410 or has failed for too long, and telling its owner."""

from __future__ import annotations

import asyncio
import binascii
import functools
import json
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta

import grpc
import structlog
from standardwebhooks.webhooks import EmptyWebhookSecretError

from hooks.registry.v1 import endpoints_pb2, routing_pb2_grpc
from services.common.db import utcnow
from services.common.headers import RESERVED_HEADERS
from services.common.logging import get_logger
from services.sender import formatters, metrics
from services.sender.attempt_recorder import AttemptRecorder
from services.sender.conversion import delivery_to_proto
from services.sender.disabled_events import EndpointDisabler
from services.sender.email_policy import EmailPolicy
from services.sender.lanes import Held
from services.sender.models import Delivery, DeliveryState
from services.sender.pauses import PausedEndpoints
from services.sender.retry_policy import RetrySchedule, Verdict
from services.sender.store import AttemptResult, DeliveryStore, QueuedDelivery
from services.sender.targets import EndpointDeleted, Target, TargetCache
from services.sender.transports import HttpTransport, Outcome, SmtpTransport
from services.sender.watch_hub import WatchHub

log = get_logger(__name__)
#: Asked before the per-attempt debug line, so a production level skips building it at all.
_level_check = logging.getLogger(__name__)

#: When the registry cannot say where an endpoint is, ask again after this long (no attempt counted).
REGISTRY_RETRY_SECONDS = 5.0
USER_AGENT = "hooks-sender/1"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt as it went: when it started, how long it took, what came of it."""

    started_at: datetime
    latency: float
    outcome: Outcome


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
        disabler: EndpointDisabler,
        hub: WatchHub,
        *,
        email: EmailPolicy,
        paused: PausedEndpoints,
    ):
        """`email`: the operator's e-mail policy (allowed recipient domains, the per-account rate limit);
        `paused`: where the deliveries of paused endpoints are held."""
        self.store = store
        self.recorder = recorder
        self.targets = targets
        self.routing = routing
        self.http = http
        self.smtp = smtp
        self.schedule = schedule
        self.disable_after = timedelta(seconds=disable_after_seconds)
        self.disabler = disabler
        self.hub = hub
        self.email = email
        self.paused = paused
        #: What a delivery waiting for its account's e-mail rate limit says (its last_error meanwhile).
        self._email_waits = ""
        if email.rate_limit is not None:
            count, seconds = email.rate_limit
            self._email_waits = (
                f"the account's e-mail rate limit ({count} per {_human(timedelta(seconds=seconds))}) is reached: "
                "sent at its turn, not counted as an attempt"
            )
        self._metric_children: dict[tuple[int, Verdict], tuple] = {}
        self._background: set[asyncio.Task] = set()

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

    async def deliver(self, held: Held) -> asyncio.Future[datetime | None] | None:
        """Attempts the delivery once, in four stages: `_prepare` (the lease and the endpoint, or a
        reason not to send), `_attempt` (format and send), `_judge` (the outcome's next state), then
        the recorder; `_recorded` does what follows once the record is committed. `held` names it
        (`held.id`) and carries it as this sender leased it (`held.delivery`, or None). Returns the
        future of the attempt's record (done once committed), or None when no attempt was made
        (another sender has it, it is no longer due, or it was settled without one)."""
        prepared = await self._prepare(held)
        if prepared is None:
            return None
        delivery, target = prepared
        attempt = await self._attempt(delivery, target)
        result = self._judge(delivery, attempt)
        held.succeeded = result.succeeded
        held.retry_at = result.next_attempt_at
        recorded = self.recorder.submit(result)
        recorded.add_done_callback(functools.partial(self._recorded, delivery, target, result, attempt))
        return recorded

    async def _prepare(self, held: Held) -> tuple[QueuedDelivery, Target] | None:
        """The delivery under this sender's lease and its endpoint as the registry has it now, or None
        when it is not to be sent now (settled here when the endpoint is gone or disabled, held while it
        is paused, put off when the registry cannot say or the account's e-mail rate is spent). While
        enough of the lease `held` carries is left it is used as is, saving a claim; a (re)claim is put
        back in `held.delivery`, so the lease renewal sees it. The lease is looked at again after the
        lookup."""
        delivery = held.delivery
        if delivery is None or not self.store.holds_lease(delivery):
            delivery = held.delivery = await self.store.claim(held.id)
        if delivery is None:
            return None  # another sender has it, or it is no longer due
        if _level_check.isEnabledFor(logging.DEBUG):  # a logging context per delivery only at debug
            structlog.contextvars.bind_contextvars(
                delivery_id=delivery.id, message_id=delivery.event_id, account_id=delivery.account_id
            )
        generation = self.targets.generation
        try:
            target = await self.targets.get(delivery.endpoint_id)
        except EndpointDeleted:
            self.announce(await self.store.settle(delivery, DeliveryState.FAILED, "endpoint deleted"))
            return None
        except grpc.aio.AioRpcError as exc:
            later = utcnow() + timedelta(seconds=REGISTRY_RETRY_SECONDS)
            error = f"registry unavailable: {exc.code().name}"
            self.announce(await self.store.settle(delivery, DeliveryState.PENDING, error, later))
            return None
        if target.account_id != delivery.account_id:
            self.announce(await self.store.settle(delivery, DeliveryState.FAILED, "endpoint deleted"))
            return None
        if not target.endpoint.enabled:
            self.announce(await self.store.settle(delivery, DeliveryState.FAILED, "endpoint disabled"))
            return None
        if target.endpoint.paused:  # kept, no attempt counted, until the endpoint is resumed
            self.announce(await self.paused.hold(delivery, generation))
            return None
        if held.lane is not None:
            held.lane.configure(target.endpoint)  # its rate limit and order, as the registry has them now
        if not self.store.holds_lease(delivery):  # the lookup took long: is the lease still ours?
            delivery = held.delivery = await self.store.claim(held.id)
            if delivery is None:
                return None
        if target.endpoint.type == endpoints_pb2.ENDPOINT_TYPE_EMAIL and self.email.recipient_allowed(
            target.endpoint.target
        ):
            wait = self.email.wait_seconds(delivery.account_id, delivery.id)
            if wait > 0:  # over the account's e-mail rate limit: its turn comes later, no attempt counted
                later = utcnow() + timedelta(seconds=wait)
                self.announce(await self.store.settle(delivery, DeliveryState.PENDING, self._email_waits, later))
                return None
        return delivery, target

    async def _attempt(self, delivery: QueuedDelivery, target: Target) -> Attempt:
        """Formats and sends it once; counted and timed in the metrics."""
        started_at = utcnow()
        clock = time.perf_counter()
        outcome = await self._send(delivery, target, started_at)
        latency = time.perf_counter() - clock
        attempts_metric, seconds_metric = self._metrics(target.endpoint.type, outcome.verdict)
        attempts_metric.inc()
        seconds_metric.observe(latency)
        return Attempt(started_at, latency, outcome)

    def _judge(self, delivery: QueuedDelivery, attempt: Attempt) -> AttemptResult:
        """What the attempt makes of the delivery: succeeded, failed for good, or pending until the
        retry schedule's next attempt (failed once the schedule gives up)."""
        outcome = attempt.outcome
        number = delivery.attempt_count + 1
        status, next_at, error = DeliveryState.FAILED, None, outcome.error
        if outcome.verdict is Verdict.SUCCEEDED:
            status = DeliveryState.SUCCEEDED
        elif outcome.verdict is Verdict.RETRY:
            delay = self.schedule.next_delay(number, outcome.retry_after)
            if delay is None:
                error = f"{outcome.error} (gave up after {number} attempts)"
            else:
                status, next_at = DeliveryState.PENDING, utcnow() + timedelta(seconds=delay)
        return AttemptResult(
            delivery_id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            number=number,
            started_at=attempt.started_at,
            latency_seconds=attempt.latency,
            http_status=outcome.http_status,
            response_body=outcome.response_body,
            error=error,
            succeeded=outcome.verdict is Verdict.SUCCEEDED,
            status=status,
            next_attempt_at=next_at,
            lease_generation=delivery.lease_generation,
            account_id=delivery.account_id,
        )

    def _recorded(
        self,
        delivery: QueuedDelivery,
        target: Target,
        result: AttemptResult,
        attempt: Attempt,
        recorded: asyncio.Future[datetime | None],
    ) -> None:
        """After the attempt's record committed: its log line, its watchers, and disabling an
        endpoint that answered 410 or has failed for too long."""
        if recorded.cancelled() or recorded.exception() is not None:
            return  # the recorder logged it; the lease runs out and the delivery is attempted again
        failing_since = recorded.result()
        status, number, error = result.status, result.number, result.error
        outcome, latency = attempt.outcome, attempt.latency
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
                    next_attempt_at=result.next_attempt_at,
                    last_error=error,
                    updated_at=result.finished_at,  # as written (a resumed watch reads from it)
                )
            )
        if outcome.verdict is Verdict.GONE:
            metrics.ENDPOINTS_DISABLED.labels("gone").inc()
            self._in_background(self.disable_endpoint(delivery.endpoint_id, target, "the endpoint answered 410 Gone"))
        elif failing_since is not None and utcnow() - failing_since >= self.disable_after:
            self._in_background(self._disable_failing(delivery, target, failing_since, status))

    async def _disable_failing(
        self, delivery: QueuedDelivery, target: Target, failing_since: datetime, status: DeliveryState
    ) -> None:
        reason = f"deliveries failed for longer than {_human(self.disable_after)} (since {failing_since:%Y-%m-%d %H:%M:%S} UTC)"
        metrics.ENDPOINTS_DISABLED.labels("failing").inc()
        await self.disable_endpoint(delivery.endpoint_id, target, reason)
        if status is DeliveryState.PENDING:
            self.announce(
                await self.store.settle(delivery, DeliveryState.FAILED, f"endpoint disabled: {reason}", released=True)
            )

    def _in_background(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("disabling an endpoint failed", error=repr(task.exception()))

    async def close(self) -> None:
        """Waits for endpoint disabling under way (it tells the registry and the endpoint's owner)."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=10)

    async def _send(self, delivery: QueuedDelivery, target: Target, now: datetime) -> Outcome:
        """The attempt's outcome, whatever happens: an exception building or sending the request is
        this attempt's failure (recorded, never a crash that leaves the lease to be taken again)."""
        try:
            return await self._build_and_send(delivery, target, now)
        except Exception:
            log.exception("delivery attempt failed unexpectedly", delivery_id=delivery.id)
            return Outcome(Verdict.RETRY, error="the attempt failed unexpectedly; the error is in the sender's log")

    async def _build_and_send(self, delivery: QueuedDelivery, target: Target, now: datetime) -> Outcome:
        endpoint = target.endpoint
        event = delivery.event  # its JSON text: a webhook sends it as it is
        if endpoint.type == endpoints_pb2.ENDPOINT_TYPE_EMAIL:
            if not self.email.recipient_allowed(endpoint.target):
                return Outcome(Verdict.FAILED, error=self.email.domains.refusal(endpoint.target))
            try:
                message = formatters.email(json.loads(event), delivery.id, self.smtp.settings.sender, endpoint.target)
            except ValueError as exc:  # e.g. a recipient or subject the e-mail format cannot carry
                return Outcome(Verdict.FAILED, error=f"the e-mail cannot be built: {exc}")
            return await self.smtp.send(message)
        if not endpoint.target.lower().startswith(("http://", "https://")):
            return Outcome(Verdict.FAILED, error="the endpoint's target is not an http(s) URL")
        try:
            request = formatters.http_request(endpoint.type, event, delivery.id, target.signing_secrets(now), now)
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
        """Disables the endpoint in the registry; its owner hears of it once, through the outbox
        (services/sender/disabled_events.py)."""
        try:
            await self.disabler.disable(target.account_id, endpoint_id, target.endpoint.name, reason)
        finally:
            self.targets.drop(endpoint_id)


def _human(period: timedelta) -> str:
    seconds = period.total_seconds()
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds * 1000:g} ms"
