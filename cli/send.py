"""`hooks send`: puts test messages on the incoming topic, the way an application would.

The successor of the original's `rake notifications:send`: it speaks Kafka directly (a plain
confluent-kafka producer), so what it sends goes through exactly the path real producers use.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import click

from services.common.settings import KafkaSettings

#: How many ids are printed at the end; the rest are counted.
SHOWN_IDS = 10


def incoming_message(
    *, application: str, event_type: str, level: str, account: str, message: str, message_id: str | None = None
) -> dict:
    """One message in the incoming format of `hooks.outbox` (see ARCHITECTURE.md, "Incoming message")."""
    return {
        "id": message_id or str(uuid.uuid4()),
        "application": application,
        "event_type": event_type,
        "level": level,
        "account_id": account,
        "timestamp": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "message": message,
    }


def generated_sentence(number: int, count: int) -> str:
    return f"Test notification {number} of {count}, sent by `hooks send` at {datetime.now(UTC):%H:%M:%S} UTC."


@dataclass
class DeliveryReport:
    """What the broker said about each produced message."""

    delivered: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, err, msg) -> None:
        if err is None:
            self.delivered += 1
        else:
            key = msg.key().decode() if msg.key() else "?"
            self.failed.append((key, str(err)))


@click.command("send")
@click.option("--application", "-a", required=True, help="The registered application's name (`application`).")
@click.option("--event-type", "-e", required=True, help="One of the application's event types (`event_type`).")
@click.option(
    "--level",
    "-l",
    default="",
    show_default=True,
    help="One of the event type's levels (`level`); leave empty for an event type without levels.",
)
@click.option(
    "--account", default="000001", show_default=True, help="The account the messages belong to (`account_id`)."
)
@click.option(
    "--message",
    "-m",
    "text",
    default=None,
    help="The notification's text (`message`). Default: a generated sentence numbering each message.",
)
@click.option("--count", "-n", default=1, show_default=True, type=click.IntRange(min=1), help="How many to send.")
@click.option(
    "--rate",
    "-r",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Messages per second; 0 sends as fast as the producer can.",
)
@click.option(
    "--bootstrap-servers",
    "-b",
    default=None,
    help="Kafka brokers, host:port[,host:port]. Default: HOOKS_KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092.",
)
@click.option(
    "--topic", "-t", default=None, help="The topic to send to. Default: HOOKS_KAFKA_TOPIC, else hooks.outbox."
)
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the broker to confirm them all.")
def send(
    application: str,
    event_type: str,
    level: str,
    account: str,
    text: str | None,
    count: int,
    rate: float,
    bootstrap_servers: str | None,
    topic: str | None,
    timeout: float,
) -> None:
    """Sends test messages to the incoming topic (hooks.outbox), as an application would.

    Each message carries a fresh uuid4 `id` and the current time as `timestamp`. The command
    waits until the broker has confirmed every message and exits with status 1 if any failed.
    Security settings (SASL, TLS) come from the HOOKS_KAFKA_* variables.

    \b
    Example:
      hooks send -a demo -e user-signed-up -l info --count 100 --rate 20
    """
    from confluent_kafka import KafkaException, Producer

    settings = KafkaSettings()
    config = settings.client_config()
    if bootstrap_servers:
        config["bootstrap.servers"] = bootstrap_servers
    topic = topic or settings.topic
    broker_errors: list[str] = []
    config.update(
        {
            "acks": "all",
            "linger.ms": 5,
            # A message not confirmed in time fails with a delivery report, not silently.
            "message.timeout.ms": int(timeout * 1000),
            # librdkafka's own log lines would drown the summary; its errors are reported below.
            "log_level": 0,
            "error_cb": lambda err: broker_errors.append(str(err)),
        }
    )
    try:
        producer = Producer(config)
    except KafkaException as exc:
        raise click.ClickException(f"cannot create a Kafka producer: {exc}") from exc

    report = DeliveryReport()
    ids: list[str] = []
    started = time.monotonic()
    for number in range(1, count + 1):
        if rate:
            # Paced against the start, so slow iterations do not add up to a lower rate.
            delay = started + (number - 1) / rate - time.monotonic()
            if delay > 0:
                producer.poll(0)
                time.sleep(delay)
        message = incoming_message(
            application=application,
            event_type=event_type,
            level=level,
            account=account,
            message=text if text is not None else generated_sentence(number, count),
        )
        payload = json.dumps(message).encode()
        while True:
            try:
                producer.produce(topic, payload, key=message["id"].encode(), on_delivery=report)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        ids.append(message["id"])
        producer.poll(0)

    producer.flush(timeout + 5)
    elapsed = time.monotonic() - started
    unconfirmed = count - report.delivered - len(report.failed)

    target = f"{topic} on {config['bootstrap.servers']}"
    click.echo(f"sent {report.delivered} of {count} message(s) to {target} in {elapsed:.2f}s")
    for message_id in ids[:SHOWN_IDS]:
        click.echo(f"  {message_id}")
    if len(ids) > SHOWN_IDS:
        click.echo(f"  ... and {len(ids) - SHOWN_IDS} more")
    if report.failed or unconfirmed:
        for key, error in report.failed[:SHOWN_IDS]:
            click.echo(f"failed: {key}: {error}", err=True)
        if len(report.failed) > SHOWN_IDS:
            click.echo(f"... and {len(report.failed) - SHOWN_IDS} more failures", err=True)
        if unconfirmed:
            click.echo(f"{unconfirmed} message(s) not confirmed by the broker within {timeout}s", err=True)
        if broker_errors:
            click.echo(f"last broker error: {broker_errors[-1]}", err=True)
        sys.exit(1)
