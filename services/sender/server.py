"""Builds the sender: its database (migrated on start), the registry client and endpoint cache, the
transports, the workers and poller, and the gRPC server; all closed through the server's on_stop."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from hooks.registry.v1 import routing_pb2_grpc
from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
from services.common.channels import channel
from services.common.db import create_engine, is_sqlite, upgrade_async
from services.common.server import GrpcServer
from services.common.settings import KafkaSettings
from services.sender.attempt_recorder import AttemptRecorder
from services.sender.deliverer import Deliverer
from services.sender.disabled_events import EndpointDisabler
from services.sender.dispatcher import Dispatcher
from services.sender.email_policy import EmailPolicy
from services.sender.lanes import BreakerSettings
from services.sender.outbox import Outbox
from services.sender.pauses import PausedEndpoints
from services.sender.queue_metrics import start_queue_sampler
from services.sender.retention import Pruner, start_pruner
from services.sender.retry_policy import RetrySchedule
from services.sender.servicer import DeliveryServicer
from services.sender.settings import SenderSettings
from services.sender.store import DeliveryStore
from services.sender.targets import TargetCache
from services.sender.transports import HttpTransport, SmtpSettings, SmtpTransport
from services.sender.watch_hub import WatchHub
from services.sender.watch_relay import WatchRelay

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_sender"
SERVICE_NAME = deliveries_pb2.DESCRIPTOR.services_by_name["DeliveryService"].full_name


class SenderServer(GrpcServer):
    """The sender's gRPC server, with what tests and tools look at: the servicer (and what hangs off
    it) and the retention pruner."""

    sender: DeliveryServicer
    pruner: Pruner


async def build_server(settings: SenderSettings, kafka: KafkaSettings | None = None) -> SenderServer:
    kafka = kafka or KafkaSettings()
    await upgrade_async(settings.sender_database_url, MIGRATIONS, VERSION_TABLE)
    engine = create_engine(settings.sender_database_url)
    sender_id = f"sender-{uuid.uuid4().hex[:12]}"
    store = DeliveryStore(engine, sender_id, settings.sender_lease_seconds)

    registry_channel = channel(settings.registry_target, tls=settings.tls)
    routing = routing_pb2_grpc.RoutingServiceStub(registry_channel)
    targets = TargetCache(routing)
    http = HttpTransport(settings.network_policy, settings.sender_attempt_timeout_seconds, settings.sender_concurrency)
    smtp = SmtpTransport(
        SmtpSettings(
            host=settings.sender_smtp_host,
            port=settings.sender_smtp_port,
            sender=settings.sender_smtp_from,
            username=settings.sender_smtp_username,
            password=settings.sender_smtp_password,
            tls=settings.sender_smtp_tls,
        ),
        settings.sender_attempt_timeout_seconds,
    )
    outbox = Outbox(engine, kafka)
    disabler = EndpointDisabler(outbox, routing)
    hub = WatchHub(settings.sender_watch_streams_per_account)
    # On PostgreSQL every replica's changes reach every replica's watchers; SQLite has one process.
    relay = None if is_sqlite(engine) else WatchRelay(hub, engine, sender_id).start()
    recorder = AttemptRecorder(store)
    paused = PausedEndpoints(store, targets)
    deliverer = Deliverer(
        store,
        recorder,
        targets,
        routing,
        http,
        smtp,
        RetrySchedule(settings.retry_delays, settings.sender_max_retry_after_seconds),
        settings.disable_after_seconds,
        disabler,
        hub,
        email=EmailPolicy(settings.email_domains, settings.email_rate_limit),
        paused=paused,
    )
    dispatcher = Dispatcher(
        deliverer.deliver,
        store,
        settings.sender_concurrency,
        settings.sender_per_endpoint_concurrency,
        settings.sender_poll_interval_seconds,
        lane_backlog=settings.sender_lane_backlog,
        renew_interval=settings.sender_lease_renewal_seconds,
        breaker=BreakerSettings(
            consecutive_failures=settings.sender_breaker_failures,
            failure_ratio=settings.sender_breaker_failure_ratio,
            window_seconds=settings.sender_breaker_window_seconds,
            probe_seconds=settings.sender_breaker_probe_seconds,
            max_probe_seconds=settings.sender_breaker_max_probe_seconds,
        ),
    )
    servicer = DeliveryServicer(
        store, dispatcher, deliverer, targets, hub, retention=timedelta(seconds=settings.sender_retention_seconds)
    )

    recorder.start()
    paused.start(dispatcher)  # before the target cache: it hears of the first stream
    targets.start()
    dispatcher.start()
    outbox.start()

    async def close() -> None:
        await paused.close()
        await dispatcher.close(grace=settings.shutdown_grace_seconds)
        await recorder.close()
        await deliverer.close()
        await targets.close()
        await http.close()
        await outbox.close()
        if relay is not None:
            await relay.close()
        await registry_channel.close()
        await engine.dispose()

    pruner, stop_pruner = start_pruner(
        engine,
        settings.sender_retention_seconds,
        settings.sender_retention_interval_seconds,
        settings.sender_retention_batch,
    )
    server = SenderServer(
        "sender",
        settings,
        [(deliveries_pb2_grpc.add_DeliveryServiceServicer_to_server, servicer, SERVICE_NAME)],
        on_stop=[start_queue_sampler(engine), stop_pruner, close],
    )
    server.sender = servicer  # for tests and tools: the servicer and what hangs off it
    server.pruner = pruner
    return server
