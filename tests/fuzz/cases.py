"""The hostile inputs of the fuzz suite, as values: Kafka records, PublishMessage calls and gateway
POST bodies, each the valid message of the hostile tenant changed by a few edits (or bytes that are
no message at all), and the batches an example sends.

A case says what is hostile about it: its repr is what a failing example shows, long strings cut
short. It is rendered into bytes or a request only when it runs, with a fresh id, so that replaying
an example never meets the sender's de-duplication of an earlier run. `tests.fuzz.strategies`
generates them; `tests.fuzz.oracle` says what the pipeline must make of each rendered one.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from hooks.matcher.v1 import matcher_pb2
from services.common.identity import encode_identity
from services.common.limits import MAX_MESSAGE_BYTES, STRING_FIELDS

#: What the fuzz suite registers: {application: {event type: its levels}}. Both applications have
#: the same event types, so one id from both is two distinct, routable events.
APPLICATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "fuzz": {"hit": ("low", "high"), "plain": ()},
    "twin": {"hit": ("low", "high"), "plain": ()},
}
#: Valid RFC 3339 timestamps (each one also valid in protobuf's JSON mapping).
VALID_TIMESTAMPS = (
    "2026-11-27T10:00:00Z",
    "2026-11-27T10:00:00.123456789+02:00",
    "1970-01-01T00:00:00Z",
    "2026-11-27t10:00:00.5z",
    "0001-01-01T00:00:00Z",  # the first and the last instant protobuf's Timestamp holds
    "9999-12-31T23:59:59.999999999Z",
)
#: Invalid ones, each with the dead-letter reasons that fit it.
INVALID_TIMESTAMPS: dict[str, frozenset[str]] = {
    "": frozenset({"invalid_timestamp"}),
    "yesterday": frozenset({"invalid_timestamp"}),
    "2026-11-27": frozenset({"invalid_timestamp"}),
    "2026-11-27T10:00:00": frozenset({"invalid_timestamp"}),  # no zone
    "2026-13-45T10:00:00Z": frozenset({"invalid_timestamp"}),
    "2026-11-27T10:00:00Z" + "0" * 100: frozenset({"invalid_timestamp"}),
    # A valid date-time that is not a valid instant: before year 1 or after 9999 once in UTC.
    "0001-01-01T00:00:00+01:00": frozenset({"invalid_timestamp"}),
    "9999-12-31T23:59:59-01:00": frozenset({"invalid_timestamp"}),
}
CONTROL_CHARACTERS = ("\x00", "\x01", "\x08", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9f")
LONE_SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff")
#: Characters that pad strings to a length: one byte, two, three and four in UTF-8 (and the last is
#: two UTF-16 units), so a limit counted in bytes or UTF-16 units instead of characters shows.
PADDING = ("-", "é", "漢", "😀")


# -- showing cases ---------------------------------------------------------------------------------


def short(value: Any, limit: int = 60) -> str:
    """repr(value), cut in the middle when long, saying how long it was."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} chars" if isinstance(value, (str, bytes)) else f"{len(text)} chars of repr"
    return f"{text[: limit // 2]}…{text[-10:]} ({size})"


class Shown:
    """Hypothesis prints a failing example with its pretty printer: use our short repr for it."""

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(repr(self))


# -- values made when a case runs ------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Fresh(Shown):
    """An id unique to one run: `length` characters (a new hex id padded with `pad`), then `suffix`."""

    length: int = 32
    pad: str = "-"
    suffix: str = ""

    def render(self, token: str) -> str:
        return (token + self.pad * self.length)[: self.length] + self.suffix

    def __repr__(self) -> str:
        extra = f", pad={self.pad!r}" if self.length > 32 else ""
        return f"Fresh({self.length}{extra}{f', suffix={self.suffix!r}' if self.suffix else ''})"


@dataclass(frozen=True, repr=False)
class Nested(Shown):
    """`depth` arrays or objects ("list", "object" or both, "mixed") nested around a 0, as JSON text."""

    depth: int
    kind: str = "list"

    @property
    def text(self) -> str:
        opening, closing = [], []
        for level in range(self.depth):
            as_list = self.kind == "list" or (self.kind == "mixed" and level % 2 == 0)
            opening.append("[" if as_list else '{"a":')
            closing.append("]" if as_list else "}")
        return "".join(opening) + "0" + "".join(reversed(closing))

    def value(self) -> Any:
        """The same as a Python value (built without recursion)."""
        value: Any = 0
        for level in reversed(range(self.depth)):
            as_list = self.kind == "list" or (self.kind == "mixed" and level % 2 == 0)
            value = [value] if as_list else {"a": value}
        return value

    def __repr__(self) -> str:
        return f"Nested({self.depth}, {self.kind!r})"


@dataclass(frozen=True, repr=False)
class Padded(Shown):
    """A message {"text": "x" * size} (made when the case runs: hypothesis keeps what it draws)."""

    size: int

    def render(self, token: str) -> dict:
        return {"text": "x" * self.size}

    def __repr__(self) -> str:
        return f"Padded({self.size})"


def _resolve(value: Any, token: str) -> Any:
    return value.render(token) if isinstance(value, (Fresh, Padded)) else value


# -- edits of a valid document ---------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Put(Shown):
    """Sets a field to a value (a Fresh id is made when the case runs)."""

    field: str
    value: Any

    def __repr__(self) -> str:
        return f"Put({self.field!r}, {short(self.value)})"


@dataclass(frozen=True, repr=False)
class Drop(Shown):
    """Removes a field."""

    field: str

    def __repr__(self) -> str:
        return f"Drop({self.field!r})"


@dataclass(frozen=True, repr=False)
class Splice(Shown):
    """Sets a field to raw JSON text (what no JSON library writes: NaN, 1e999, "\\ud800", deep nesting)."""

    field: str
    text: str | Nested

    @property
    def raw(self) -> str:
        return self.text.text if isinstance(self.text, Nested) else self.text

    def __repr__(self) -> str:
        return f"Splice({self.field!r}, {self.text if isinstance(self.text, Nested) else short(self.text)})"


Edit = Put | Drop | Splice


def apply_edits(document: dict, edits: tuple[Edit, ...], token: str) -> tuple[dict, dict[str, str]]:
    """The document after the edits, and the splices to make in its JSON text ({marker: raw text})."""
    document = dict(document)
    splices: dict[str, str] = {}
    for edit in edits:
        if isinstance(edit, Drop):
            document.pop(edit.field, None)
        elif isinstance(edit, Put):
            document[edit.field] = _resolve(edit.value, token)
        else:
            marker = f"@@splice-{len(splices)}-{token}@@"
            document[edit.field] = marker
            splices[json.dumps(marker)] = edit.raw
    return document, splices


def to_json(document: Any, splices: dict[str, str] | None = None) -> bytes:
    """JSON as Python's json writes it (NaN and Infinity included), UTF-8; non-ASCII escaped only
    when the text holds lone surrogates (which UTF-8 cannot carry); then the raw splices."""
    try:
        data = json.dumps(document, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        data = json.dumps(document).encode()
    for marker, raw in (splices or {}).items():
        data = data.replace(marker.encode(), raw.encode("utf-8", "surrogatepass"))
    return data


# -- Kafka records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenants:
    """The accounts of one run: the hostile one (an id at the length limit, with a catch-all filter)
    and the good one (its own endpoint, a filter on application `fuzz`)."""

    hostile: str
    good: str

    @classmethod
    def fresh(cls) -> Tenants:
        limit = STRING_FIELDS["account_id"][0]
        return cls(hostile=f"hostile-{uuid.uuid4().hex}".ljust(limit, "x"), good=f"good-{uuid.uuid4().hex[:12]}")


def valid_record(account: str, token: str) -> dict:
    """A valid incoming message of `account`, routable to its endpoint, with the id `token`."""
    return {
        "id": token,
        "application": "fuzz",
        "event_type": "hit",
        "level": "low",
        "account_id": account,
        "timestamp": VALID_TIMESTAMPS[0],
        "message": {"text": "hostile", "pad": ""},
    }


@dataclass(frozen=True, repr=False)
class Record(Shown):
    """A record of the hostile tenant: the valid one with `edits`, padded to exactly `size` bytes
    when given (with ASCII in message.pad)."""

    edits: tuple[Edit, ...] = ()
    size: int | None = None

    def render(self, tenants: Tenants) -> list[bytes | None]:
        token = uuid.uuid4().hex
        document, splices = apply_edits(valid_record(tenants.hostile, token), self.edits, token)
        data = to_json(document, splices)
        if self.size is not None:
            document["message"] = {"text": "hostile", "pad": "x" * max(0, self.size - len(data))}
            data = to_json(document, splices)
        return [data]

    def __repr__(self) -> str:
        parts = [repr(edit) for edit in self.edits]
        if self.size is not None:
            parts.append(f"size={self.size} (limit {MAX_MESSAGE_BYTES})")
        return f"Record({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class Raw(Shown):
    """A record that is not a message document: given bytes (None: a tombstone)."""

    value: bytes | None

    def render(self, tenants: Tenants) -> list[bytes | None]:
        return [self.value]

    def __repr__(self) -> str:
        return f"Raw({short(self.value)})"


@dataclass(frozen=True, repr=False)
class Mangled(Shown):
    """The valid record's bytes, mangled: "corrupt" puts `data` (invalid UTF-8) inside message.text,
    "truncate" keeps the first `keep` bytes, "bom" prefixes a UTF-8 byte order mark, "utf16"
    encodes it in UTF-16."""

    how: str
    data: bytes = b""
    keep: int = 0

    def render(self, tenants: Tenants) -> list[bytes | None]:
        data = to_json(valid_record(tenants.hostile, uuid.uuid4().hex))
        if self.how == "corrupt":
            return [data.replace(b'"hostile"', b'"host' + self.data + b'ile"', 1)]
        if self.how == "truncate":
            return [data[: min(self.keep, len(data) - 1)]]
        if self.how == "bom":
            return [b"\xef\xbb\xbf" + data]
        return [data.decode().encode("utf-16")]

    def __repr__(self) -> str:
        detail = {"corrupt": f", {self.data!r}", "truncate": f", keep={self.keep}"}.get(self.how, "")
        return f"Mangled({self.how!r}{detail})"


@dataclass(frozen=True, repr=False)
class Twins(Shown):
    """Two valid records with one id, from the applications `fuzz` and `twin`: two distinct events,
    both to be delivered to the same endpoint."""

    event_type: str = "hit"

    def render(self, tenants: Tenants) -> list[bytes | None]:
        token = uuid.uuid4().hex
        records = []
        for application in ("fuzz", "twin"):
            document = valid_record(tenants.hostile, token)
            document.update(application=application, event_type=self.event_type)
            if not APPLICATIONS[application][self.event_type]:
                document["level"] = ""
            records.append(to_json(document))
        return records

    def __repr__(self) -> str:
        return f"Twins({self.event_type!r})"


@dataclass(frozen=True, repr=False)
class Burst(Shown):
    """`count` valid records of `size` bytes each, at once: what batches to the senders and pages of
    ListDeliveries must hold within their byte bounds (4 MiB gRPC messages)."""

    count: int
    size: int

    def render(self, tenants: Tenants) -> list[bytes | None]:
        return [Record(size=self.size).render(tenants)[0] for _ in range(self.count)]

    def __repr__(self) -> str:
        return f"Burst({self.count}, {self.size})"


KafkaCase = Record | Raw | Mangled | Twins | Burst


@dataclass(frozen=True)
class KafkaBatch:
    """One example: hostile cases produced to one partition, a good message before each and after the last."""

    partition: int
    cases: tuple[KafkaCase, ...]
    #: The key and headers every record of the example carries, good ones too: a producer's to
    #: choose, any bytes (a dead letter keeps them as they were).
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


# -- PublishMessage calls --------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Identity(Shown):
    """A hostile x-rh-identity: "control" (an account_number with a control character), "long"
    (65 characters), "deep" (JSON nested 5,000 deep), "garbage" (not base64), "missing"."""

    kind: str

    def metadata(self) -> tuple[tuple[str, str], ...]:
        if self.kind == "missing":
            return ()
        value = {
            "control": encode_identity("acct\x00ount"),
            "long": encode_identity("a" * (STRING_FIELDS["account_id"][0] + 1)),
            "deep": base64.b64encode(b"[" * 5000).decode(),
            "garbage": "not base64!",
        }[self.kind]
        return (("x-rh-identity", value),)

    def __repr__(self) -> str:
        return f"Identity({self.kind!r})"


@dataclass(frozen=True, repr=False)
class Stamp(Shown):
    """A protobuf Timestamp, possibly out of range (years 1-9999, nanos below 1e9)."""

    seconds: int
    nanos: int = 0

    def __repr__(self) -> str:
        return f"Stamp({self.seconds}, {self.nanos})"


def carried(value: Any) -> Any:
    """A JSON value as a protobuf Value can carry it: every number a double (too large: infinite)."""
    stack = [value]
    root: list[Any] = [None]
    slots = [(root, 0)]
    while stack:
        item = stack.pop()
        container, key = slots.pop()
        if isinstance(item, bool) or item is None or isinstance(item, str):
            container[key] = item
        elif isinstance(item, (int, float)):
            try:
                container[key] = float(item)
            except OverflowError:
                container[key] = float("inf") if item > 0 else float("-inf")
        elif isinstance(item, list):
            container[key] = [None] * len(item)
            for index, child in enumerate(item):
                stack.append(child)
                slots.append((container[key], index))
        else:
            container[key] = dict.fromkeys(item)
            for name, child in item.items():
                stack.append(child)
                slots.append((container[key], name))
    return root[0]


def to_value(value: Any) -> struct_pb2.Value:
    """A protobuf Value of a carried JSON value (NaN and infinities kept: protobuf's double has them)."""
    result = struct_pb2.Value()
    stack = [(value, result)]
    while stack:
        item, target = stack.pop()
        if item is None:
            target.null_value = struct_pb2.NULL_VALUE
        elif isinstance(item, bool):
            target.bool_value = item
        elif isinstance(item, float):
            target.number_value = item
        elif isinstance(item, str):
            target.string_value = item
        elif isinstance(item, list):
            target.list_value.SetInParent()
            for child in item:
                stack.append((child, target.list_value.values.add()))
        else:
            target.struct_value.SetInParent()
            for name, child in item.items():
                stack.append((child, target.struct_value.fields[name]))
    return result


@dataclass(frozen=True, repr=False)
class Call(Shown):
    """A PublishMessage call of the hostile tenant: the valid request with these fields replaced
    (`message` a JSON value, Nested or Padded; `timestamp` a Stamp; `id` a Fresh or a string), maybe with
    a hostile identity."""

    fields: tuple[tuple[str, Any], ...] = ()
    identity: Identity | None = None
    unset_message: bool = False

    def request(self, token: str) -> tuple[matcher_pb2.PublishMessageRequest, Any]:
        """The request and the message as the oracle sees it (None when unset)."""
        values: dict[str, Any] = {"application": "fuzz", "event_type": "hit", "level": "low", "id": token}
        values["message"] = {"text": "hostile"}
        for name, value in self.fields:
            values[name] = _resolve(value, token)
        message = values.pop("message")
        if isinstance(message, Nested):
            message = message.value()
        stamp = values.pop("timestamp", None)
        request = matcher_pb2.PublishMessageRequest(**values)
        if self.unset_message:
            message = None
        else:
            message = carried(message)
            request.message.CopyFrom(to_value(message))
        if stamp is not None:
            request.timestamp.CopyFrom(timestamp_pb2.Timestamp(seconds=stamp.seconds, nanos=stamp.nanos))
        return request, message

    def __repr__(self) -> str:
        parts = [f"{name}={short(value)}" for name, value in self.fields]
        if self.unset_message:
            parts.append("message unset")
        if self.identity is not None:
            parts.append(repr(self.identity))
        return f"Call({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class TwinCalls(Shown):
    """Two valid calls with one id, from `fuzz` and `twin`."""

    def __repr__(self) -> str:
        return "TwinCalls()"


@dataclass(frozen=True)
class CallBatch:
    cases: tuple[Call | TwinCalls, ...]


# -- gateway POST bodies ---------------------------------------------------------------------------


def valid_body(token: str) -> dict:
    return {"application": "fuzz", "event_type": "hit", "level": "low", "message": {"text": "hostile"}, "id": token}


@dataclass(frozen=True, repr=False)
class Post(Shown):
    """A POST /api/hooks/v1/messages of the hostile tenant: the valid body with `edits`, or `raw`
    bytes instead; maybe with a hostile identity."""

    edits: tuple[Edit, ...] = ()
    raw: bytes | None = None
    identity: Identity | None = None

    def body(self, token: str) -> bytes:
        if self.raw is not None:
            return self.raw
        document, splices = apply_edits(valid_body(token), self.edits, token)
        return to_json(document, splices)

    def __repr__(self) -> str:
        parts = [repr(edit) for edit in self.edits]
        if self.raw is not None:
            parts.append(f"raw={short(self.raw)}")
        if self.identity is not None:
            parts.append(repr(self.identity))
        return f"Post({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class TwinPosts(Shown):
    """Two valid POSTs with one id, from `fuzz` and `twin`."""

    def __repr__(self) -> str:
        return "TwinPosts()"


@dataclass(frozen=True)
class PostBatch:
    cases: tuple[Post | TwinPosts, ...]
