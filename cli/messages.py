"""`hooks messages get ID`: what happened to one message, from what hooks keeps today.

    hooks messages get 6f1c0d0e-...             # looks the message up in the last 24 hours
    hooks messages get 6f1c0d0e-... --since 7d --account 000001 --json

Where the answer comes from (no component records a message's outcome by id yet):

1. hooks.outbox, read since --since (bounded): where the message is (partition, offset), and its
   account, application, event type and level. The record's key or its JSON `id` must be the id
   (hooks_client and `hooks send` key records by id).
2. The matcher's consumer group: whether it has committed past that offset (then the matcher is
   done with the message) or not (it is still waiting, or being worked on).
3. hooks.outbox.dlq, read whole (or since --since): its dead letters, with the reason.
4. The sender's ListDeliveries(event_id=ID) as the message's account (from step 1, or --account):
   its deliveries, one per endpoint, with their status.

The verdict: `routed` (deliveries exist), `dead_lettered`, `unroutable` (the matcher is done with
it, and there is neither a delivery nor a dead letter: no enabled filter matched then; an
inference, the matcher records no such outcome), `pending` (on the topic, not yet done), or
`not_found`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import click
import grpc

from cli.dlq import DeadLetter, dead_letters, parse_since, since_option
from cli.topics import bootstrap_option, json_option, kafka_config, matcher_group
from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
from services.common.broker import Record, committed_offsets, read_topic
from services.common.channels import channel
from services.common.identity import identity_metadata
from services.common.settings import CommonSettings

ROUTED, DEAD_LETTERED, UNROUTABLE, PENDING, NOT_FOUND = "routed", "dead_lettered", "unroutable", "pending", "not_found"


@dataclass
class Placement:
    """The message on hooks.outbox: where, what it says, and whether the matcher is done with it."""

    record: Record
    document: dict[str, Any]
    committed: int | None

    @property
    def done(self) -> bool:
        return self.committed is not None and self.committed > self.record.offset


@dataclass
class MessageStatus:
    id: str
    status: str = NOT_FOUND
    placements: list[Placement] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    deliveries: list[deliveries_pb2.Delivery] = field(default_factory=list)
    account: str = ""
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "account_id": self.account or None,
            "outbox": [
                {
                    "partition": p.record.partition,
                    "offset": p.record.offset,
                    "committed": p.committed,
                    "done_by_matcher": p.done,
                    **{k: p.document.get(k) for k in ("application", "event_type", "level", "timestamp")},
                }
                for p in self.placements
            ],
            "dead_letters": [letter.as_json() for letter in self.dead_letters],
            "deliveries": [
                {
                    "id": d.id,
                    "endpoint_id": d.endpoint_id,
                    "status": deliveries_pb2.DeliveryStatus.Name(d.status).removeprefix("DELIVERY_STATUS_").lower(),
                    "attempt_count": d.attempt_count,
                }
                for d in self.deliveries
            ],
            "notes": self.notes,
        }


def _is(record: Record, message_id: str) -> tuple[bool, dict[str, Any]]:
    """Whether the record is the message (key or JSON id), and its JSON object (or {})."""
    try:
        document = json.loads(record.value) if record.value is not None else None
    except (ValueError, RecursionError):
        document = None
    document = document if isinstance(document, dict) else {}
    keyed = record.key is not None and record.key == message_id.encode()
    return keyed or document.get("id") == message_id, document


async def _deliveries(target: str, account: str, message_id: str) -> list[deliveries_pb2.Delivery]:
    found: list[deliveries_pb2.Delivery] = []
    async with channel(target, tls=CommonSettings().tls) as ch:
        stub = deliveries_pb2_grpc.DeliveryServiceStub(ch)
        token = ""
        while True:
            page = await stub.ListDeliveries(
                deliveries_pb2.ListDeliveriesRequest(event_id=message_id, page_size=1000, page_token=token),
                metadata=identity_metadata(account),
                timeout=30,
            )
            found.extend(page.deliveries)
            token = page.next_page_token
            if not token:
                return found


def message_status(
    message_id: str, *, config: dict[str, str], topic: str, dlq_topic: str, group: str, sender_target: str,
    since: datetime | None, account: str | None,
) -> MessageStatus:  # fmt: skip
    """What happened to the message `message_id` (see the module)."""
    result = MessageStatus(message_id)
    try:
        records = read_topic(config, topic, since=since)
    except LookupError as missing:
        raise click.ClickException(str(missing)) from None
    committed = committed_offsets(config, group, topic)
    for record in records:
        matched, document = _is(record, message_id)
        if matched:
            result.placements.append(Placement(record, document, committed.get(record.partition)))
    result.dead_letters = [
        letter
        for letter in dead_letters(config, dlq_topic, since)
        if letter.matches(application=None, reason=None, message_id=message_id)
    ]
    result.account = account or next(
        (str(p.document["account_id"]) for p in result.placements if isinstance(p.document.get("account_id"), str)),
        next(
            (str(d.fields["account_id"]) for d in result.dead_letters if isinstance(d.fields.get("account_id"), str)),
            "",
        ),
    )
    if result.account:
        try:
            result.deliveries = asyncio.run(_deliveries(sender_target, result.account, message_id))
        except grpc.aio.AioRpcError as error:
            result.notes.append(
                f"the sender at {sender_target} did not answer ({error.code().name}): deliveries unknown"
            )
    else:
        result.notes.append("no account known (the message was not found): deliveries not looked up; give --account")
    if result.deliveries:
        result.status = ROUTED
    elif result.dead_letters:
        result.status = DEAD_LETTERED
    elif any(p.done for p in result.placements):
        result.status = UNROUTABLE
        result.notes.append(
            "inferred: the matcher is done with the message and there is neither a delivery nor a dead letter, "
            "so no enabled filter of the account matched it when it was processed"
        )
    elif result.placements:
        result.status = PENDING
    return result


def _text(status: MessageStatus, since: datetime | None) -> list[str]:
    window = f"since {since.isoformat(timespec='seconds')}" if since else "in the whole topic"
    lines = [f"message {status.id}: {status.status.replace('_', ' ')}"]
    for p in status.placements:
        what = "/".join(str(p.document.get(k, "?")) for k in ("application", "event_type", "level"))
        done = "done by the matcher" if p.done else f"not yet done by the matcher (committed: {p.committed})"
        lines.append(
            f"  on {p.record.topic} partition {p.record.partition} offset {p.record.offset}: {what}, account {p.document.get('account_id')}; {done}"
        )
    if not status.placements:
        lines.append(f"  not on the incoming topic {window}")
    for letter in status.dead_letters:
        lines.append(
            f"  dead-lettered ({letter.reason}): {letter.description}  [dlq {letter.record.partition}:{letter.record.offset}]"
        )
    if status.deliveries:
        lines.append(f"  {len(status.deliveries)} delivery(ies):")
        for d in status.deliveries:
            state = deliveries_pb2.DeliveryStatus.Name(d.status).removeprefix("DELIVERY_STATUS_").lower()
            lines.append(f"    {d.id} to endpoint {d.endpoint_id}: {state} after {d.attempt_count} attempt(s)")
    lines += [f"  note: {note}" for note in status.notes]
    return lines


@click.group()
def messages() -> None:
    """Follow messages through hooks."""


@messages.command()
@click.argument("message_id")
@click.option(
    "--account",
    default=None,
    help="The message's account, to look its deliveries up when it is not on the topic any more.",
)
@since_option
@bootstrap_option
@click.option(
    "--sender-target", envvar="HOOKS_SENDER_TARGET", default=lambda: CommonSettings().sender_target,
    show_default="HOOKS_SENDER_TARGET or 127.0.0.1:50052", help="The sender's gRPC address.",
)  # fmt: skip
@json_option
def get(
    message_id: str,
    account: str | None,
    since: str | None,
    bootstrap_servers: str | None,
    sender_target: str,
    as_json: bool,
) -> None:
    """What happened to the message MESSAGE_ID: routed (with its deliveries), dead-lettered (why),
    unroutable, or still pending. Reads hooks.outbox since --since (default 24h) and the dead-letter
    topic; exits 1 when the message is not found."""
    settings, config = kafka_config(bootstrap_servers)
    window = parse_since(since or "24h")
    status = message_status(
        message_id, config=config, topic=settings.topic, dlq_topic=settings.dlq_topic, group=matcher_group(),
        sender_target=sender_target, since=window, account=account,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(status.as_json()))
    else:
        click.echo("\n".join(_text(status, window)))
    if status.status == NOT_FOUND:
        raise SystemExit(1)
