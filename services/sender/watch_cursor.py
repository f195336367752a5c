"""WatchDeliveries' resume tokens: where a watcher stands, so that one that reconnects misses nothing.

A token is the update time and id of the last delivery change a watcher was sent (base64url of
`w1:<microseconds since the epoch>:<delivery id>`; opaque to clients). A delivery's `updated_at` is
written with every change a watcher is told of, so "what changed since" is a range of the index on
(account_id, updated_at). Update times are taken before the transaction that writes them commits,
and on several replicas by several clocks: a change committed just after another may carry an
earlier time. So a resumed watch reads from RESUME_OVERLAP before the token's time, sending again
what changed in that window (at least once; the token's own delivery is not sent again unless it
changed since).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hooks.sender.v1 import deliveries_pb2
from services.common.errors import FieldViolations
from services.common.limits import text_problem

#: How far before a token's time a resumed watch reads again (see the module's doc).
RESUME_OVERLAP = timedelta(seconds=2)
#: Longest token accepted (a delivery id is a uuid: tokens are about 70 characters).
MAX_TOKEN_CHARS = 200
_VERSION = "w1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIELD = "resume_token"


@dataclass(frozen=True)
class Cursor:
    """A watcher's position: it was sent `delivery_id` as it stood at `update_time`."""

    update_time: datetime
    delivery_id: str


def token_of(delivery: deliveries_pb2.Delivery) -> str:
    """The token of the position just after this change (a Delivery as watchers are sent it)."""
    micros = delivery.update_time.seconds * 1_000_000 + delivery.update_time.nanos // 1000
    text = f"{_VERSION}:{micros}:{delivery.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def parse_token(token: str) -> Cursor:
    """The position a token names; FieldViolations naming `resume_token` when it is not a token."""
    invalid = FieldViolations(
        [(FIELD, "is not a resume token of WatchDeliveries (give the resume_token of a response as it was sent)")]
    )
    if len(token) > MAX_TOKEN_CHARS:
        raise invalid
    try:
        text = base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode("ascii")).decode()
        version, micros, delivery_id = text.split(":", 2)
        update_time = _EPOCH + timedelta(microseconds=int(micros))
    except (binascii.Error, ValueError, UnicodeError, OverflowError):
        raise invalid from None
    if version != _VERSION or not delivery_id or text_problem(delivery_id) is not None:
        raise invalid
    return Cursor(update_time, delivery_id)


def check_age(cursor: Cursor, now: datetime, retention: timedelta) -> None:
    """FieldViolations naming `resume_token` when changes since the cursor may have been pruned."""
    if cursor.update_time < now - retention:
        days = retention / timedelta(days=1)
        raise FieldViolations(
            [
                (
                    FIELD,
                    f"is older than this sender keeps finished deliveries ({days:g} days: HOOKS_SENDER_RETENTION_SECONDS),"
                    " so some changes since are gone; watch without it and list the deliveries to catch up",
                )
            ]
        )
