"""`hooks send`: puts test messages on the incoming topic, the way an application would.

The successor of the original's `rake notifications:send`: it publishes with `hooks_client.Publisher`,
the producers' package, so what it sends is built and checked exactly as applications' messages are
and goes through exactly the path real producers use (Kafka).
"""

from __future__ import annotations

import sys
import time
import uuid
from concurrent.futures import Future
from datetime import UTC, datetime

import click

from hooks_client import Published, Publisher, PublishError, Rejected
from services.common.settings import KafkaSettings

#: How many ids are printed at the end; the rest are counted.
SHOWN_IDS = 10


def generated_sentence(number: int, count: int) -> str:
    return f"Test notification {number} of {count}, sent by `hooks send` at {datetime.now(UTC):%H:%M:%S} UTC."


class _Progress:
    """A progress bar of the messages sent, on stderr when it is a terminal (and not --quiet); otherwise
    nothing, so that scripts and logs get only the summary."""

    def __init__(self, count: int, quiet: bool):
        self.shown = count > 1 and not quiet and sys.stderr.isatty()
        self._bar = (
            click.progressbar(length=count, label="sending", file=sys.stderr, show_pos=True) if self.shown else None
        )

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)

    def update(self, steps: int) -> None:
        if self._bar is not None:
            self._bar.update(steps)


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
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (there is none anyway when stderr is no terminal).")
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
    quiet: bool,
) -> None:
    """Sends test messages to the incoming topic (hooks.outbox), as an application would.

    Each message carries a fresh uuid4 `id` and the current time as `timestamp`. The command
    waits until the broker has confirmed every message and exits with status 1 if any failed.
    Security settings (SASL, TLS) come from the HOOKS_KAFKA_* variables.

    \b
    Example:
      hooks send -a demo -e user-signed-up -l info --count 100 --rate 20
    """
    settings = KafkaSettings()
    config: dict = settings.client_config()
    if bootstrap_servers:
        config["bootstrap.servers"] = bootstrap_servers
    # librdkafka's own log lines would drown the summary; its errors are reported below.
    config["log_level"] = 0
    try:
        publisher = Publisher(topic=topic or settings.topic, config=config, delivery_timeout=timeout)
    except PublishError as exc:
        raise click.ClickException(str(exc)) from exc

    sent: list[tuple[str, Future[Published]]] = []
    started = time.monotonic()
    progress = _Progress(count, quiet)
    with progress:
        for number in range(1, count + 1):
            if rate:
                # Paced against the start, so slow iterations do not add up to a lower rate.
                delay = started + (number - 1) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            message_id = str(uuid.uuid4())
            try:
                future = publisher.submit(
                    id=message_id,
                    application=application,
                    event_type=event_type,
                    level=level,
                    account_id=account,
                    message=text if text is not None else generated_sentence(number, count),
                )
            except Rejected as rejected:
                publisher.close(timeout)
                raise click.ClickException(
                    f"not sent: it would be dead-lettered as {rejected.reason}: {rejected.description}"
                ) from None
            sent.append((message_id, future))
            progress.update(1)

    if progress.shown:
        click.echo(f"waiting for the broker to confirm {count} message(s)...", err=True)

    unconfirmed = 0
    try:
        publisher.close(timeout + 5)
    except PublishError:
        unconfirmed = sum(not future.done() for _, future in sent)
    elapsed = time.monotonic() - started
    failed = [(ident, str(future.exception())) for ident, future in sent if future.done() and future.exception()]
    delivered = [future.result() for _, future in sent if future.done() and not future.exception()]

    target = f"{publisher.topic} on {config['bootstrap.servers']}"
    click.echo(f"sent {len(delivered)} of {count} message(s) to {target} in {elapsed:.2f}s")
    for published in delivered[:SHOWN_IDS]:
        click.echo(f"  {published.id}")
    if len(delivered) > SHOWN_IDS:
        click.echo(f"  ... and {len(delivered) - SHOWN_IDS} more")
    if failed or unconfirmed:
        for ident, error in failed[:SHOWN_IDS]:
            click.echo(f"failed: {ident}: {error}", err=True)
        if len(failed) > SHOWN_IDS:
            click.echo(f"... and {len(failed) - SHOWN_IDS} more failures", err=True)
        if unconfirmed:
            click.echo(f"{unconfirmed} message(s) not confirmed by the broker within {timeout}s", err=True)
        if publisher.last_broker_error:
            click.echo(f"last broker error: {publisher.last_broker_error}", err=True)
        sys.exit(1)
