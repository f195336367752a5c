"""The incoming message of `hooks.outbox`: built in one place, checked by one set of rules.

An application publishes JSON objects with `application`, `event_type`, `level` (empty for an event
type without levels), `message` (any JSON value), `timestamp` (RFC 3339 with a zone), `account_id`
and an optional `id`. `build_envelope()` builds one and `encode()` turns it into the bytes that go on the
topic; `parse_message()` is what hooks' matcher applies to every record it reads, and what the
publishers of this package apply before they send: a message they accept is never dead-lettered for
its shape (whether its application, event type and level are registered is the registry's to say).

A message that breaks a rule raises `Rejected`, whose `reason` is the code the matcher would
dead-letter it with (`hooks.error.reason`: a short code of the closed set
`hooks.matcher.v1.DeadLetterReason`, e.g. `invalid_json`) and whose `description` names the field.
The limits on names, ids and the `message` value are `hooks_client.limits`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hooks.matcher.v1 import dead_letters_pb2
from hooks_client.limits import MAX_MESSAGE_BYTES, json_type, json_value_problem, string_problem

_PREFIX = "DEAD_LETTER_REASON_"


def reason_code(reason: int) -> str:
    """The short code of a DeadLetterReason: its name without the prefix, in lower case."""
    return dead_letters_pb2.DeadLetterReason.Name(reason).removeprefix(_PREFIX).lower()


#: Every reason a message may be dead-lettered for (the `hooks.error.reason` header, the metric label).
REASONS: frozenset[str] = frozenset(
    reason_code(value.number) for value in dead_letters_pb2.DeadLetterReason.DESCRIPTOR.values if value.number
)

INVALID_JSON = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_INVALID_JSON)
NOT_AN_OBJECT = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_NOT_AN_OBJECT)
MISSING_FIELD = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_MISSING_FIELD)
INVALID_TYPE = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_INVALID_TYPE)
INVALID_VALUE = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_INVALID_VALUE)
INVALID_TIMESTAMP = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_INVALID_TIMESTAMP)
TOO_LARGE = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_TOO_LARGE)
SCHEMA_VIOLATION = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_SCHEMA_VIOLATION)

MAX_TIMESTAMP_CHARS = 64


class TimestampOutOfRange(ValueError):
    """A well-formed RFC 3339 date-time that falls outside the years 0001-9999 once in UTC."""

    def __init__(self) -> None:
        super().__init__("is out of range: in UTC it must fall within the years 0001 to 9999")


#: The fields every message must have (`id` is optional).
REQUIRED = ("application", "event_type", "level", "message", "timestamp", "account_id")
#: The names and ids among them, checked by `limits.string_problem`.
NAMES = ("application", "event_type", "level", "account_id")

# RFC 3339 date-time: full date, `T`, full time with optional fraction, and a zone (Z or ±hh:mm).
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z")


class Rejected(ValueError):
    """The message would be dead-lettered: `reason` is a code of REASONS, `description` a sentence
    naming the field, `field` the field's name (empty when the problem is the whole message)."""

    def __init__(self, reason: str, description: str, field: str = ""):
        assert reason in REASONS, reason
        super().__init__(description)
        self.reason = reason
        self.description = description
        self.field = field


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message that passed the rules."""

    application: str
    event_type: str
    level: str
    account_id: str
    timestamp: datetime
    #: Any JSON value within the limits (depth, finite numbers, valid Unicode).
    message: Any
    #: The producer's id; None when it gave none (then the identity is topic/partition/offset).
    id: str | None


def _in_utc(value: datetime) -> datetime:
    """`value` (timezone-aware) in UTC, or TimestampOutOfRange when that falls outside the years 0001-9999 that
    datetime and protobuf's Timestamp hold (0001-01-01T00:00:00+01:00 is still year 0 in UTC)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise TimestampOutOfRange() from None


def parse_timestamp(value: str) -> datetime:
    """An RFC 3339 date-time (with its zone) within years 0001-9999 in UTC, or ValueError
    (TimestampOutOfRange for one outside them)."""
    if len(value) > MAX_TIMESTAMP_CHARS or not _RFC3339.match(value):
        raise ValueError("not an RFC 3339 date-time")
    text = value.upper()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # fromisoformat takes at most 6 fraction digits: cut nanoseconds to microseconds.
    match = re.match(r"^(.*\.\d{6})\d+(.*)$", text)
    if match:
        text = match.group(1) + match.group(2)
    when = datetime.fromisoformat(text)
    _in_utc(when)
    return when


def format_timestamp(value: datetime) -> str:
    """`value` (timezone-aware) as RFC 3339 in UTC with microseconds: 2026-01-02T03:04:05.000006Z."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise Rejected(
            INVALID_TIMESTAMP, "field 'timestamp' must be timezone-aware (a naive datetime has no zone)", "timestamp"
        )
    try:
        in_utc = _in_utc(value)
    except TimestampOutOfRange as exc:
        raise Rejected(INVALID_TIMESTAMP, f"field 'timestamp' {exc}", "timestamp") from None
    return in_utc.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _check_name(document: dict, field: str) -> None:
    """Raises Rejected when `document[field]` breaks the limits of a name or id (limits.STRING_FIELDS)."""
    value = document[field]
    problem = string_problem(field, value)
    if problem:
        raise Rejected(INVALID_VALUE if isinstance(value, str) else INVALID_TYPE, problem, field)


def parse_document(document: Any) -> IncomingMessage:
    """The validated message of a decoded JSON document, or raises Rejected (every rule but the size)."""
    if not isinstance(document, dict):
        raise Rejected(NOT_AN_OBJECT, f"the message must be a JSON object, not {json_type(document)}")
    for field in REQUIRED:
        if field not in document:
            raise Rejected(MISSING_FIELD, f"field '{field}' is missing", field)
    for field in NAMES:
        _check_name(document, field)
    identity = document.get("id")
    if identity is not None:
        _check_name(document, "id")
        identity = identity or None
    timestamp = document["timestamp"]
    if not isinstance(timestamp, str):
        raise Rejected(
            INVALID_TIMESTAMP, f"field 'timestamp' must be an RFC 3339 string, not {json_type(timestamp)}", "timestamp"
        )
    try:
        when = parse_timestamp(timestamp)
    except ValueError as exc:
        problem = str(exc) if isinstance(exc, TimestampOutOfRange) else "is not an RFC 3339 date-time"
        raise Rejected(INVALID_TIMESTAMP, f"field 'timestamp' {problem}: {timestamp[:80]!r}", "timestamp") from None
    problem = json_value_problem(document["message"])
    if problem:
        raise Rejected(INVALID_VALUE, problem, "message")
    return IncomingMessage(
        application=document["application"],
        event_type=document["event_type"],
        level=document["level"],
        account_id=document["account_id"],
        timestamp=when,
        message=document["message"],
        id=identity,
    )


def parse_message(raw: bytes | None, max_bytes: int = MAX_MESSAGE_BYTES) -> IncomingMessage:
    """The validated message of a record's value, or raises Rejected: what the matcher applies."""
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
    return parse_document(document)


def build_envelope(
    *,
    id: str,
    application: str,
    event_type: str,
    level: str,
    account_id: str,
    timestamp: datetime | str,
    message: Any,
) -> dict[str, Any]:
    """The message as a JSON object, fields in their usual order; `timestamp` a timezone-aware
    datetime (written in UTC) or an RFC 3339 string (kept as given). Not checked: see `encode`."""
    return {
        "id": id,
        "application": application,
        "event_type": event_type,
        "level": level,
        "account_id": account_id,
        "timestamp": timestamp if isinstance(timestamp, str) else format_timestamp(timestamp),
        "message": message,
    }


def encode(document: dict[str, Any], max_bytes: int = MAX_MESSAGE_BYTES) -> bytes:
    """The bytes of a message for `hooks.outbox` (compact UTF-8 JSON), after checking `document` with
    the matcher's rules; raises Rejected for anything the matcher would dead-letter for its shape."""
    parse_document(document)
    raw = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    if len(raw) > max_bytes:
        raise Rejected(TOO_LARGE, f"the message is {len(raw)} bytes, larger than the limit of {max_bytes}")
    return raw


def incoming_json(
    *,
    identity: str,
    application: str,
    event_type: str,
    level: str,
    account_id: str,
    timestamp: datetime,
    message: Any,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> bytes:
    """`encode(build_envelope(...))`: the checked bytes of one message (the matcher's PublishMessage and the
    sender's `endpoint-disabled` event call this)."""
    return encode(
        build_envelope(
            id=identity,
            application=application,
            event_type=event_type,
            level=level,
            account_id=account_id,
            timestamp=timestamp,
            message=message,
        ),
        max_bytes,
    )
