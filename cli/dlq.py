"""`hooks dlq`: what is on the dead-letter topic, and replaying what was fixed.

    hooks dlq list                                    # every dead letter: where from, why, which message
    hooks dlq list --reason unknown_event_type --application policies
    hooks dlq replay --reason unknown_event_type      # after registering the missing event type
    hooks dlq replay --id 6f1c... --dry-run           # what would be replayed

A dead letter is the original record (value, key and headers untouched) plus the matcher's
`hooks.error.*` headers (where it was read, the reason, a sentence naming the field). Replaying
produces the original record again to the incoming topic, without the `hooks.error.*` headers, and
waits for the broker's acknowledgement. A message with an `id` is de-duplicated by the sender, so
replaying it twice never delivers it twice; one without an `id` is identified by where it is read,
so each replay of it is a new message.

Reads are bounded: the topic is read from its start (or --since) to its end as the command finds it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from cli.topics import bootstrap_option, json_option, kafka_config
from hooks_client.envelope import REASONS
from hooks_client.kafka import RecordProducer
from services.common.broker import Record, read_topic
from services.matcher.dead_letters import HEADER_MESSAGE, HEADER_OFFSET, HEADER_PARTITION, HEADER_REASON, HEADER_TOPIC

#: The prefix of the headers the matcher adds to a dead letter (removed when it is replayed).
ERROR_HEADER_PREFIX = "hooks.error."


def parse_since(value: str | None) -> datetime | None:
    """`--since`: a duration back from now (30m, 12h, 7d) or an RFC 3339 date-time."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a duration (30m, 12h, 7d) nor an RFC 3339 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


since_option = click.option(
    "--since", default=None, help="Only records written since then: a duration (30m, 12h, 7d) or an RFC 3339 date-time."
)


@dataclass(frozen=True)
class DeadLetter:
    """A record of the dead-letter topic, with what its headers and (where it is JSON) its value say."""

    record: Record
    reason: str
    description: str
    origin: str
    #: The message's fields where its value is a JSON object (else empty).
    fields: dict[str, Any]

    @classmethod
    def of(cls, record: Record) -> DeadLetter:
        fields: dict[str, Any] = {}
        try:
            document = json.loads(record.value) if record.value is not None else None
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict):
            fields = {
                k: document[k] for k in ("id", "application", "event_type", "level", "account_id") if k in document
            }
        origin = f"{record.header(HEADER_TOPIC)}/{record.header(HEADER_PARTITION)}/{record.header(HEADER_OFFSET)}"
        return cls(record, record.header(HEADER_REASON), record.header(HEADER_MESSAGE), origin, fields)

    @property
    def message_id(self) -> str:
        """The message's `id` (or its key, which hooks_client sets to it); "" when it has neither."""
        value = self.fields.get("id")
        if isinstance(value, str) and value:
            return value
        return (self.record.key or b"").decode(errors="replace")

    def matches(self, *, application: str | None, reason: str | None, message_id: str | None) -> bool:
        if application is not None and self.fields.get("application") != application:
            return False
        if reason is not None and self.reason != reason:
            return False
        if message_id is not None and message_id not in (
            self.fields.get("id"),
            (self.record.key or b"").decode(errors="replace"),
        ):
            return False
        return True

    def as_json(self) -> dict[str, Any]:
        return {
            "partition": self.record.partition,
            "offset": self.record.offset,
            "time": datetime.fromtimestamp(self.record.timestamp_ms / 1000, UTC).isoformat()
            if self.record.timestamp_ms
            else None,
            "reason": self.reason,
            "description": self.description,
            "origin": self.origin,
            "id": self.message_id or None,
            **{k: v for k, v in self.fields.items() if k != "id"},
        }

    def line(self) -> str:
        what = " ".join(
            f"{k}={self.fields[k]}" for k in ("application", "event_type", "level", "account_id") if k in self.fields
        )
        return (
            f"{self.record.partition}:{self.record.offset}  {self.reason}  id={self.message_id or '-'}  {what}\n"
            f"    from {self.origin}: {self.description}"
        )


def dead_letters(config: dict[str, str], topic: str, since: datetime | None = None) -> list[DeadLetter]:
    """Every dead letter of `topic` (since `since`), oldest first per partition."""
    try:
        return [DeadLetter.of(record) for record in read_topic(config, topic, since=since)]
    except LookupError as missing:
        raise click.ClickException(str(missing)) from None


def selection_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--application", "-a", default=None, help="Only dead letters of this application."),
            click.option(
                "--reason",
                "-r",
                default=None,
                type=click.Choice(sorted(REASONS)),
                help="Only dead letters of this reason.",
            ),
            click.option("--id", "message_id", default=None, help="Only the dead letters of this message id."),
            since_option,
        ]
    ):
        function = option(function)
    return function


@click.group()
def dlq() -> None:
    """Inspect and replay the dead-letter topic (hooks.outbox.dlq)."""


@dlq.command(name="list")
@selection_options
@bootstrap_option
@json_option
def list_(
    application: str | None,
    reason: str | None,
    message_id: str | None,
    since: str | None,
    bootstrap_servers: str | None,
    as_json: bool,
) -> None:
    """List dead letters: where each came from, why, and which message it is."""
    settings, config = kafka_config(bootstrap_servers)
    chosen = [
        letter
        for letter in dead_letters(config, settings.dlq_topic, parse_since(since))
        if letter.matches(application=application, reason=reason, message_id=message_id)
    ]
    for letter in chosen:
        click.echo(json.dumps(letter.as_json()) if as_json else letter.line())
    if not as_json:
        click.echo(f"{len(chosen)} dead letter(s) on {settings.dlq_topic}", err=True)


@dlq.command()
@selection_options
@click.option(
    "--offset", "offsets", multiple=True, metavar="PARTITION:OFFSET", help="Only this dead letter (repeatable)."
)
@click.option("--all", "every", is_flag=True, help="Replay every dead letter (no other selection needed).")
@click.option("--dry-run", is_flag=True, help="Print what would be replayed; replay nothing.")
@bootstrap_option
def replay(
    application: str | None,
    reason: str | None,
    message_id: str | None,
    since: str | None,
    offsets: tuple[str, ...],
    every: bool,
    dry_run: bool,
    bootstrap_servers: str | None,
) -> None:
    """Re-publish chosen dead letters to the incoming topic: the original records, without the
    hooks.error.* headers (after fixing their cause, e.g. registering a missing event type).

    Choose with --reason, --application, --id, --since and --offset (all must hold), or --all.
    """
    if not (every or application or reason or message_id or since or offsets):
        raise click.UsageError("choose what to replay (--reason, --application, --id, --since, --offset) or say --all")
    places: set[tuple[int, int]] = set()
    for text in offsets:
        partition, _, offset = text.partition(":")
        if not (partition.isdigit() and offset.isdigit()):
            raise click.BadParameter(f"{text!r} is not PARTITION:OFFSET", param_hint="--offset")
        places.add((int(partition), int(offset)))
    settings, config = kafka_config(bootstrap_servers)
    chosen = [
        letter
        for letter in dead_letters(config, settings.dlq_topic, parse_since(since))
        if letter.matches(application=application, reason=reason, message_id=message_id)
        and (not places or (letter.record.partition, letter.record.offset) in places)
    ]
    if dry_run:
        for letter in chosen:
            click.echo(letter.line())
        click.echo(f"dry run: {len(chosen)} dead letter(s) would be replayed to {settings.topic}", err=True)
        return
    producer = RecordProducer(config={**config, "log_level": 0})
    futures = []
    for letter in chosen:
        headers = [(name, value) for name, value in letter.record.headers if not name.startswith(ERROR_HEADER_PREFIX)]
        futures.append(
            (
                letter,
                producer.produce(
                    settings.topic, letter.record.value, key=letter.record.key, headers=headers, id=letter.message_id
                ),
            )
        )
    left = producer.close(60)
    failed = 0
    for letter, future in futures:
        error = future.exception() if future.done() else "not acknowledged"
        if error:
            failed += 1
            click.echo(f"failed: {letter.record.partition}:{letter.record.offset}: {error}", err=True)
            continue
        published = future.result()
        click.echo(
            f"replayed {letter.record.partition}:{letter.record.offset} id={letter.message_id or '-'} "
            f"-> {published.topic}/{published.partition}/{published.offset}"
        )
    click.echo(f"{len(futures) - failed} of {len(futures)} dead letter(s) replayed to {settings.topic}", err=True)
    if failed or left:
        raise SystemExit(1)
