"""What an incoming message of `hooks.outbox` must be, and why one is rejected.

The rules are `hooks_client.envelope`'s, the one implementation the producers' client applies before
sending and the matcher applies to every record (`parse_message`): a message the client accepts is never
dead-lettered for its shape. A rejected message is dead-lettered with `Rejected.reason` (a short code of
the closed set `hooks.matcher.v1.DeadLetterReason`, e.g. `invalid_json`) and `Rejected.description` (a
sentence naming the field) as headers. What only the matcher can say is here: whether the application,
event type and level are registered (the registry's ResolveRoutes `registered` and `unregistered`,
turned into the same shape by `unregistered()`), and the reasons of the later stages.
"""

from __future__ import annotations

from hooks.matcher.v1 import dead_letters_pb2
from hooks.registry.v1 import routing_pb2
from hooks_client.envelope import (  # noqa: F401 - the matcher's names for the shared rules
    INVALID_JSON,
    INVALID_TIMESTAMP,
    INVALID_TYPE,
    INVALID_VALUE,
    MISSING_FIELD,
    NOT_AN_OBJECT,
    REASONS,
    REQUIRED,
    SCHEMA_VIOLATION,
    TOO_LARGE,
    IncomingMessage,
    Rejected,
    parse_message,
    parse_timestamp,
    reason_code,
)

UNKNOWN_APPLICATION = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_UNKNOWN_APPLICATION)
UNKNOWN_EVENT_TYPE = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_UNKNOWN_EVENT_TYPE)
UNKNOWN_LEVEL = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_UNKNOWN_LEVEL)
REJECTED_BY_REGISTRY = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_REJECTED_BY_REGISTRY)
REJECTED_BY_SENDER = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_REJECTED_BY_SENDER)
UNDELIVERABLE = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_UNDELIVERABLE)
PROCESSING_ERROR = reason_code(dead_letters_pb2.DEAD_LETTER_REASON_PROCESSING_ERROR)


def unregistered(which: int, reason: str, application: str, event_type: str, level: str) -> Rejected:
    """What the registry's `registered=false` means for the message: the field that names nothing known.

    `which` is ResolveRoutesResponse.unregistered; `reason` (the registry's sentence) is kept in the
    description. A registry older than that field answers UNREGISTERED_UNSPECIFIED, taken as the application.
    """
    said = f" ({reason})" if reason else ""
    if which == routing_pb2.UNREGISTERED_LEVEL:
        return Rejected(
            UNKNOWN_LEVEL, f"field 'level': {level!r} is not a level of {application}/{event_type}{said}", "level"
        )
    if which == routing_pb2.UNREGISTERED_EVENT_TYPE:
        return Rejected(
            UNKNOWN_EVENT_TYPE,
            f"field 'event_type': {event_type!r} is not an event type of {application}{said}",
            "event_type",
        )
    return Rejected(
        UNKNOWN_APPLICATION,
        f"field 'application': {application!r} is not a registered application{said}",
        "application",
    )
