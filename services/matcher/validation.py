"""What an incoming message of `hooks.outbox` must be, and why one is rejected.

A rejected message is dead-lettered with `Rejected.reason` (a machine code) and `Rejected.description`
(a sentence naming the field) as headers; the same rules answer PublishMessage with field violations.
Whether the application, event type and level are registered is the registry's to say
(ResolveRoutes `registered`); `unregistered()` turns its answer into the same shape.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Reason codes (the `hooks.error.reason` header).
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
INVALID_TYPE = "invalid_type"
INVALID_VALUE = "invalid_value"
INVALID_TIMESTAMP = "invalid_timestamp"
TOO_LARGE = "too_large"
UNKNOWN_APPLICATION = "unknown_application"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
UNKNOWN_LEVEL = "unknown_level"
REJECTED_BY_REGISTRY = "rejected_by_registry"
REJECTED_BY_SENDER = "rejected_by_sender"
PROCESSING_ERROR = "processing_error"  # a bug in the matcher: dead-lettered rather than lost or stuck

#: Longest value (characters) of each string field; `required` ones may not be empty.
STRING_FIELDS: dict[str, tuple[int, bool]] = {
    "application": (255, True),
    "event_type": (255, True),
    "level": (255, False),
    "account_id": (64, True),
    "id": (200, False),
}
MAX_TIMESTAMP_CHARS = 64
REQUIRED = ("application", "event_type", "level", "message", "timestamp", "account_id")

# RFC 3339 date-time: full date, `T`, full time with optional fraction, and a zone (Z or ±hh:mm).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


class Rejected(Exception):
    """The message cannot be routed; `reason` is a code, `description` names the field."""

    def __init__(self, reason: str, description: str, field: str = ""):
        super().__init__(description)
        self.reason = reason
        self.description = description
        self.field = field


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    application: str
    event_type: str
    level: str
    account_id: str
    timestamp: datetime
    #: Any JSON value.
    message: Any
    #: The producer's id; None when it gave none (then the identity is topic/partition/offset).
    id: str | None


def parse_timestamp(value: str) -> datetime:
    """An RFC 3339 date-time (with its zone), or ValueError."""
    if len(value) > MAX_TIMESTAMP_CHARS or not _RFC3339.match(value):
        raise ValueError("not an RFC 3339 date-time")
    text = value.upper()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # fromisoformat takes at most 6 fraction digits: cut nanoseconds to microseconds.
    match = re.match(r"^(.*\.\d{6})\d+(.*)$", text)
    if match:
        text = match.group(1) + match.group(2)
    return datetime.fromisoformat(text)


def string_problem(field: str, value: Any) -> tuple[str, str] | None:
    """(reason, description) when `value` is not an acceptable value of string field `field`."""
    limit, required = STRING_FIELDS[field]
    if not isinstance(value, str):
        return INVALID_TYPE, f"field '{field}' must be a string, not {_json_type(value)}"
    if required and not value.strip():
        return INVALID_VALUE, f"field '{field}' must not be empty"
    if len(value) > limit:
        return INVALID_VALUE, f"field '{field}' is longer than {limit} characters"
    return None


def parse_message(raw: bytes | None, max_bytes: int) -> IncomingMessage:
    """The validated message, or raises Rejected."""
    if raw is None:
        raise Rejected(INVALID_JSON, "the message has no value (a tombstone), not a JSON object")
    if len(raw) > max_bytes:
        raise Rejected(TOO_LARGE, f"the message is {len(raw)} bytes, larger than the limit of {max_bytes}")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(INVALID_JSON, f"the message is not valid UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise Rejected(INVALID_JSON, "the message is JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise Rejected(NOT_AN_OBJECT, f"the message must be a JSON object, not {_json_type(document)}")
    for field in REQUIRED:
        if field not in document:
            raise Rejected(MISSING_FIELD, f"field '{field}' is missing", field)
    for field in ("application", "event_type", "level", "account_id"):
        problem = string_problem(field, document[field])
        if problem:
            raise Rejected(*problem, field)
    identity = document.get("id")
    if identity is not None:
        problem = string_problem("id", identity)
        if problem:
            raise Rejected(*problem, "id")
        identity = identity or None
    timestamp = document["timestamp"]
    if not isinstance(timestamp, str):
        raise Rejected(
            INVALID_TIMESTAMP, f"field 'timestamp' must be an RFC 3339 string, not {_json_type(timestamp)}", "timestamp"
        )
    try:
        when = parse_timestamp(timestamp)
    except ValueError:
        raise Rejected(
            INVALID_TIMESTAMP, f"field 'timestamp' is not an RFC 3339 date-time: {timestamp[:80]!r}", "timestamp"
        ) from None
    return IncomingMessage(
        application=document["application"],
        event_type=document["event_type"],
        level=document["level"],
        account_id=document["account_id"],
        timestamp=when,
        message=document["message"],
        id=identity,
    )


def unregistered(reason: str, application: str, event_type: str, level: str) -> Rejected:
    """What the registry's `registered=false` means for the message: which field names nothing known.

    The registry's `reason` is free text; it names the level, the event type or the application.
    """
    text = reason
    for name in (application, event_type, level):  # names are quoted in the reason and may hold any word
        text = text.replace(repr(name), "").replace(f'"{name}"', "")
    text = text.lower()
    if "level" in text:
        return Rejected(UNKNOWN_LEVEL, f"field 'level': {level!r} is not a level of {application}/{event_type} ({reason})", "level")
    if "event type" in text or "event_type" in text:
        return Rejected(
            UNKNOWN_EVENT_TYPE,
            f"field 'event_type': {event_type!r} is not an event type of {application} ({reason})",
            "event_type",
        )
    return Rejected(
        UNKNOWN_APPLICATION, f"field 'application': {application!r} is not a registered application ({reason})", "application"
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
