"""From a validated incoming message to the hooks.events.v1.Event the senders receive. (The incoming
JSON itself, what PublishMessage puts on the topic, is built and checked by `hooks_client.envelope`.)"""

from __future__ import annotations

import secrets
from datetime import UTC
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from hooks.events.v1 import event_pb2
from services.matcher.validation import IncomingMessage


def identity_of(message: IncomingMessage, topic: str, partition: int, offset: int) -> str:
    """The producer's id, else "<topic>/<partition>/<offset>" (the same when the message is re-read)."""
    return message.id or f"{topic}/{partition}/{offset}"


def to_value(value: Any) -> struct_pb2.Value:
    result = struct_pb2.Value()
    json_format.ParseDict(value, result)
    return result


def to_event(message: IncomingMessage, identity: str) -> event_pb2.Event:
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromDatetime(message.timestamp.astimezone(UTC))
    return event_pb2.Event(
        id=identity,
        application=message.application,
        event_type=message.event_type,
        level=message.level,
        account_id=message.account_id,
        timestamp=timestamp,
        message=to_value(message.message),
    )


def new_traceparent() -> str:
    """A new W3C trace context (version 00, sampled): one trace per message."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
