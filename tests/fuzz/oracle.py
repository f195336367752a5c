"""What the pipeline must make of each hostile input, decided from the input alone and the agreed
limits (`services.common.limits`), never from the code under test.

- A Kafka record (`expect_record`): delivered to the hostile tenant's endpoint, intact, when it is a
  valid message; else dead-lettered with one of the reasons its problems call for (when it has
  several, any of theirs). Where the contract leaves the choice open (a UTF-8 byte order mark,
  UTF-16) either outcome is right, but it must be one of them.
- A PublishMessage call (`expect_call`) or a gateway POST (`expect_post`): OK / 200 exactly when
  the event is valid and registered, then delivered; else INVALID_ARGUMENT / 400 (UNAUTHENTICATED
  / 401 for an unreadable identity).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from hooks.matcher.v1 import dead_letters_pb2
from services.common.limits import MAX_MESSAGE_BYTES, json_value_problem, string_problem, text_problem
from tests.fuzz.cases import APPLICATIONS, INVALID_TIMESTAMPS, VALID_TIMESTAMPS

#: The dead-letter reasons' short codes: the closed set of hooks.matcher.v1.DeadLetterReason.
CLOSED_REASONS = frozenset(
    name.removeprefix("DEAD_LETTER_REASON_").lower()
    for name in dead_letters_pb2.DeadLetterReason.keys()
    if name != "DEAD_LETTER_REASON_UNSPECIFIED"
)
REQUIRED = ("application", "event_type", "level", "message", "timestamp", "account_id")
NAMES = ("application", "event_type", "level", "account_id")
LARGEST_DOUBLE = 1.7976931348623157e308


@dataclass(frozen=True)
class Expectation:
    """`deliver`: True must be delivered, False must be dead-lettered / refused, None either.
    `reasons`: the dead-letter reasons (or status codes) that fit; `problems`: why, in words.
    `document`: the decoded message, when there is one (what a delivery must carry)."""

    deliver: bool | None
    reasons: frozenset[str] = frozenset()
    problems: tuple[str, ...] = ()
    document: Any = field(default=None, compare=False)


class _Strictness:
    """What Python's lenient json accepted that strict JSON does not (NaN, Infinity, overflow)."""

    def __init__(self) -> None:
        self.lenient: list[str] = []

    def constant(self, name: str) -> float:
        self.lenient.append(name)
        return float(name)

    def float(self, text: str) -> float:
        value = float(text)
        if math.isinf(value):
            self.lenient.append(text[:20])
        return value


def _registration_problem(application: str, event_type: str, level: str) -> tuple[str, str] | None:
    types = APPLICATIONS.get(application)
    if types is None:
        return "unknown_application", f"application {application!r} is not registered"
    levels = types.get(event_type)
    if levels is None:
        return "unknown_event_type", f"event type {event_type!r} is not one of {application}'s"
    if (level not in levels) if levels else level != "":
        return "unknown_level", f"level {level!r} is not one of {application}/{event_type}'s"
    return None


def _name_problems(document: dict, names: tuple[str, ...]) -> tuple[set[str], list[str]]:
    reasons: set[str] = set()
    problems: list[str] = []
    for name in names:
        if name in document:
            problem = string_problem(name, document[name])
            if problem:
                reasons.add("invalid_type" if not isinstance(document[name], str) else "invalid_value")
                problems.append(problem)
    return reasons, problems


def expect_record(raw: bytes | None, account: str) -> Expectation:
    """What must become of a record on the outbox topic when `account` is the only routed one."""
    if raw is None:
        return Expectation(False, frozenset({"invalid_json"}), ("a tombstone",))
    reasons: set[str] = set()
    problems: list[str] = []
    if len(raw) > MAX_MESSAGE_BYTES:
        reasons.add("too_large")
        problems.append(f"{len(raw)} bytes, more than {MAX_MESSAGE_BYTES}")
    if raw.startswith(b"\xef\xbb\xbf") or raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        # A byte order mark: JSON text "MAY" be read past one (RFC 8259 8.1); UTF-16 is not UTF-8 JSON.
        # Either way it is settled; a delivery carries the document behind the mark.
        codec = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-16"
        return Expectation(
            None, frozenset(reasons | {"invalid_json"}), ("a byte order mark",), json.loads(raw.decode(codec))
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        try:  # surrogates encoded as UTF-8 (CESU): not UTF-8, and what they decode to is not valid Unicode
            text = raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return Expectation(False, frozenset(reasons | {"invalid_json"}), (*problems, f"not UTF-8: {exc}"[:200]))
        reasons.add("invalid_json")
        problems.append(f"not UTF-8: {exc}"[:200])
    strictness = _Strictness()
    try:
        document = json.loads(text, parse_constant=strictness.constant, parse_float=strictness.float)
    except ValueError as exc:
        return Expectation(False, frozenset(reasons | {"invalid_json"}), (*problems, f"not JSON: {exc}"[:200]))
    except RecursionError:
        return Expectation(
            False, frozenset(reasons | {"invalid_json", "invalid_value"}), (*problems, "nested too deeply")
        )
    if strictness.lenient:
        reasons.add("invalid_json")  # what strict JSON refuses; the value's own check adds its reason
    if not isinstance(document, dict):
        return Expectation(False, frozenset(reasons | {"not_an_object"}), (*problems, "not an object"))

    for name in REQUIRED:
        if name not in document:
            reasons.add("missing_field")
            problems.append(f"field {name!r} is missing")
    found, said = _name_problems(document, NAMES)
    reasons |= found
    problems += said
    identity = document.get("id")
    if identity is not None:
        problem = string_problem("id", identity)
        if problem:
            reasons.add("invalid_type" if not isinstance(identity, str) else "invalid_value")
            problems.append(problem)
    if "timestamp" in document:
        stamp = document["timestamp"]
        if not isinstance(stamp, str):
            reasons |= {"invalid_timestamp", "invalid_type"}
            problems.append(f"timestamp is not a string: {stamp!r}"[:100])
        elif stamp in INVALID_TIMESTAMPS:
            reasons |= INVALID_TIMESTAMPS[stamp]
            problems.append(f"timestamp {stamp[:40]!r} is not a valid instant")
        elif text_problem(stamp):  # a lone surrogate or a control character: no date-time
            reasons |= {"invalid_timestamp", "invalid_value"}
            problems.append(f"timestamp {stamp!r} {text_problem(stamp)}")
        elif stamp not in VALID_TIMESTAMPS:
            raise AssertionError(f"the suite made a timestamp it cannot judge: {stamp!r}")
    if "message" in document:
        problem = json_value_problem(document["message"])
        if problem:
            reasons.add("invalid_value")
            problems.append(problem)
    names_valid = all(name in document and string_problem(name, document[name]) is None for name in NAMES)
    if names_valid:
        registration = _registration_problem(document["application"], document["event_type"], document["level"])
        if registration:
            reasons |= {registration[0], "rejected_by_registry"}
            problems.append(registration[1])
        elif not problems and document["account_id"] != account:
            raise AssertionError(f"the suite made a valid message no filter routes: {document['account_id']!r}")
    if problems:
        return Expectation(False, frozenset(reasons), tuple(problems), document)
    if strictness.lenient:
        return Expectation(None, frozenset(reasons), (f"strict JSON refuses {strictness.lenient}",), document)
    return Expectation(True, document=document)


def delivered_id(document: dict, topic: str, partition: int, offset: int) -> str:
    """The id a delivery of this record carries: its own, else topic/partition/offset."""
    identity = document.get("id")
    return identity if isinstance(identity, str) and identity else f"{topic}/{partition}/{offset}"


def _event_problems(
    application: str, event_type: str, level: str, identity: str, message: Any, message_bytes: int
) -> list[str]:
    problems: list[str] = []
    for name, value in (("application", application), ("event_type", event_type), ("level", level), ("id", identity)):
        problem = string_problem(name, value)
        if problem:
            problems.append(problem)
    problem = json_value_problem(message)
    if problem:
        problems.append(problem)
    if message_bytes > MAX_MESSAGE_BYTES:
        problems.append(f"message of {message_bytes} bytes: the event is larger than {MAX_MESSAGE_BYTES}")
    if not problems:
        registration = _registration_problem(application, event_type, level)
        if registration:
            problems.append(registration[1])
    return problems


def _message_bytes(message: Any) -> int:
    try:
        return len(json.dumps(message, ensure_ascii=False).encode())
    except (UnicodeEncodeError, ValueError, RecursionError):
        return 0  # judged by json_value_problem


def expect_call(fields: dict[str, Any], message: Any, message_set: bool, stamp, identity_ok: bool) -> Expectation:
    """What PublishMessage must answer: OK (then delivery) or INVALID_ARGUMENT / UNAUTHENTICATED."""
    if not identity_ok:
        return Expectation(False, frozenset({"UNAUTHENTICATED", "INVALID_ARGUMENT"}), ("an unreadable identity",))
    problems = _event_problems(
        fields["application"], fields["event_type"], fields["level"], fields["id"], message, _message_bytes(message)
    )
    if not message_set:
        problems.append("message is unset")
    if stamp is not None and not (-62135596800 <= stamp.seconds <= 253402300799 and 0 <= stamp.nanos <= 999_999_999):
        problems.append(f"timestamp {stamp!r} is out of range")
    if problems:
        return Expectation(False, frozenset({"INVALID_ARGUMENT"}), tuple(problems))
    return Expectation(True, document={**fields, "message": message})


def expect_post(body: bytes, identity_ok: bool) -> Expectation:
    """What POST /api/hooks/v1/messages must answer: 200 (then delivery), 400, or 401 for the identity."""
    if not identity_ok:
        return Expectation(False, frozenset({"401", "400"}), ("an unreadable identity",))
    refused = frozenset({"400"})
    strictness = _Strictness()
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=strictness.constant, parse_float=strictness.float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return Expectation(False, refused, (f"not JSON: {exc}"[:200],))
    if strictness.lenient:
        return Expectation(False, refused, (f"not strict JSON: {strictness.lenient}",))
    if not isinstance(document, dict):
        return Expectation(False, refused, ("not an object",))
    known = {"application", "event_type", "eventType", "level", "message", "timestamp", "id"}
    unknown = sorted(set(document) - known)
    values = {("event_type" if k == "eventType" else k): v for k, v in document.items() if k in known}
    # The gateway refuses a null for a field (the API's document offers none), but for `message`, a
    # JSON value, which may be null (gateway/transcoder.py).
    problems: list[str] = [f"{name} is null" for name, value in values.items() if value is None and name != "message"]
    strings = {}
    for name in ("application", "event_type", "level", "id"):
        value = values.get(name)
        if value is None:
            strings[name] = ""
        elif isinstance(value, str):
            strings[name] = value
        else:
            problems.append(f"{name} is not a string")
            strings[name] = ""
    if "message" not in values:
        problems.append("message is missing")
    stamp = values.get("timestamp")
    lower_case = False
    if stamp is not None:
        if not isinstance(stamp, str):
            problems.append("timestamp is not a string")
        elif stamp in INVALID_TIMESTAMPS:
            problems.append(f"timestamp {stamp[:40]!r} is not a valid instant")
        elif stamp not in VALID_TIMESTAMPS:
            raise AssertionError(f"the suite made a timestamp it cannot judge: {stamp!r}")
        else:  # RFC 3339 allows a lower-case t and z; protobuf's JSON mapping of Timestamp does not.
            lower_case = stamp != stamp.upper()
    if not problems:
        message = values["message"]
        problems = _event_problems(
            strings["application"],
            strings["event_type"],
            strings["level"],
            strings["id"],
            message,
            _message_bytes(message),
        )
    if problems:
        return Expectation(False, refused, tuple(problems))
    document = {**strings, "message": values["message"]}
    if unknown:  # protobuf's JSON parsers refuse unknown fields by default; ignoring them is an option
        return Expectation(None, refused, (f"unknown fields {unknown}",), document)
    if lower_case:
        return Expectation(None, refused, (f"a lower-case RFC 3339 timestamp {stamp!r}",), document)
    return Expectation(True, document=document)


def same_json(left: Any, right: Any) -> bool:
    """Equal as JSON values carried by protobuf: every number compared as a double."""
    stack = [(left, right)]
    while stack:
        a, b = stack.pop()
        if isinstance(a, bool) or isinstance(b, bool):
            if a is not b:
                return False
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
            if float(a) != float(b):
                return False
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                return False
            stack.extend(zip(a, b, strict=True))
        elif isinstance(a, dict) and isinstance(b, dict):
            if a.keys() != b.keys():
                return False
            stack.extend((a[k], b[k]) for k in a)
        elif a != b or type(a) is not type(b):
            return False
    return True
