"""What an incoming message must be: each way of being wrong has its reason code and names the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from hooks.matcher.v1 import dead_letters_pb2
from hooks.registry.v1 import routing_pb2
from services.common import limits
from services.matcher import validation as v
from services.matcher.validation import Rejected, parse_message, unregistered

VALID = {
    "application": "policies",
    "event_type": "policy-triggered",
    "level": "critical",
    "message": {"text": "CPU is on fire"},
    "timestamp": "2026-11-27T10:00:00Z",
    "account_id": "000001",
}


def encode(document) -> bytes:
    return json.dumps(document).encode()


def rejection(raw: bytes, max_bytes: int = 256 * 1024) -> Rejected:
    with pytest.raises(Rejected) as caught:
        parse_message(raw, max_bytes)
    return caught.value


def test_valid_message_is_parsed():
    message = parse_message(encode({**VALID, "id": "abc"}), 1024)
    assert (message.application, message.event_type, message.level, message.account_id) == (
        "policies",
        "policy-triggered",
        "critical",
        "000001",
    )
    assert message.timestamp == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert message.message == {"text": "CPU is on fire"}
    assert message.id == "abc"


@pytest.mark.parametrize("value", [None, "text", 42, [1, 2], {"nested": True}])
def test_message_field_may_be_any_json_value(value):
    assert parse_message(encode({**VALID, "message": value}), 1024).message == value


def test_level_may_be_empty_and_id_absent():
    message = parse_message(encode({**VALID, "level": ""}), 1024)
    assert message.level == "" and message.id is None


@pytest.mark.parametrize(
    "stamp, expected",
    [
        ("2026-11-27T10:00:00+02:00", datetime(2026, 11, 27, 8, tzinfo=UTC)),
        ("2026-11-27t10:00:00.123456789z", datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-27T10:00:00.5-01:30", datetime(2026, 11, 27, 11, 30, 0, 500000, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T22:59:59.999999999-01:00", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps(stamp, expected):
    assert parse_message(encode({**VALID, "timestamp": stamp}), 1024).timestamp == expected


@pytest.mark.parametrize(
    "raw, reason, named",
    [
        (b"{not json", v.INVALID_JSON, "JSON"),
        (b"\xff\xfe", v.INVALID_JSON, "JSON"),
        (b"[1, 2]", v.NOT_AN_OBJECT, "object"),
        (b'"a string"', v.NOT_AN_OBJECT, "object"),
        (encode({k: x for k, x in VALID.items() if k != "account_id"}), v.MISSING_FIELD, "'account_id'"),
        (encode({k: x for k, x in VALID.items() if k != "message"}), v.MISSING_FIELD, "'message'"),
        (encode({k: x for k, x in VALID.items() if k != "level"}), v.MISSING_FIELD, "'level'"),
        (encode({**VALID, "application": 7}), v.INVALID_TYPE, "'application'"),
        (encode({**VALID, "level": None}), v.INVALID_TYPE, "'level'"),
        (encode({**VALID, "id": 12}), v.INVALID_TYPE, "'id'"),
        (encode({**VALID, "event_type": ""}), v.INVALID_VALUE, "'event_type'"),
        (encode({**VALID, "account_id": "x" * 65}), v.INVALID_VALUE, "'account_id'"),
        (encode({**VALID, "id": "x" * 201}), v.INVALID_VALUE, "'id'"),
        (encode({**VALID, "application": "a" * 256}), v.INVALID_VALUE, "'application'"),
        (encode({**VALID, "timestamp": "yesterday"}), v.INVALID_TIMESTAMP, "'timestamp'"),
        (encode({**VALID, "timestamp": "2026-11-27T10:00:00"}), v.INVALID_TIMESTAMP, "'timestamp'"),
        (encode({**VALID, "timestamp": "2026-11-27"}), v.INVALID_TIMESTAMP, "'timestamp'"),
        (encode({**VALID, "timestamp": "2026-13-45T10:00:00Z"}), v.INVALID_TIMESTAMP, "'timestamp'"),
        (encode({**VALID, "timestamp": 1764237600}), v.INVALID_TIMESTAMP, "'timestamp'"),
        # Well-formed, but year 0 or 10000 once in UTC: neither datetime nor protobuf's Timestamp holds
        # it (it was dead-lettered as invalid_value naming 'message', and hooks_client let it through).
        (
            encode({**VALID, "timestamp": "0001-01-01T00:00:00+01:00"}),
            v.INVALID_TIMESTAMP,
            "'timestamp' is out of range",
        ),
        (
            encode({**VALID, "timestamp": "9999-12-31T23:59:59-01:00"}),
            v.INVALID_TIMESTAMP,
            "'timestamp' is out of range",
        ),
    ],
)
def test_each_bad_message_has_its_reason(raw, reason, named):
    rejected = rejection(raw)
    assert rejected.reason == reason
    assert named in rejected.description


def test_too_large():
    raw = encode({**VALID, "message": "x" * 2000})
    rejected = rejection(raw, max_bytes=1000)
    assert rejected.reason == v.TOO_LARGE
    assert str(len(raw)) in rejected.description


def test_deeply_nested_json_is_rejected_not_crashed_on():
    raw = b'{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert rejection(raw, max_bytes=10**6).reason == v.INVALID_JSON


def test_tombstone_is_rejected():
    assert rejection(None).reason == v.INVALID_JSON  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "which, code, field",
    [
        (routing_pb2.UNREGISTERED_APPLICATION, v.UNKNOWN_APPLICATION, "application"),
        (routing_pb2.UNREGISTERED_EVENT_TYPE, v.UNKNOWN_EVENT_TYPE, "event_type"),
        (routing_pb2.UNREGISTERED_LEVEL, v.UNKNOWN_LEVEL, "level"),
    ],
)
def test_the_registrys_unregistered_names_the_field(which, code, field):
    # The registry's sentence is kept for people, but never read: names may hold any word.
    rejected = unregistered(
        which, "the level 'event type' of application 'level'", "level", "event type", "application"
    )
    assert (rejected.reason, rejected.field) == (code, field)
    assert f"'{field}'" in rejected.description
    assert "the level 'event type' of application 'level'" in rejected.description


def test_reason_codes_are_the_dead_letter_reason_enum():
    names = {value.name for value in dead_letters_pb2.DeadLetterReason.DESCRIPTOR.values if value.number}
    assert v.REASONS == {name.removeprefix("DEAD_LETTER_REASON_").lower() for name in names}
    assert {v.INVALID_JSON, v.INVALID_VALUE, v.UNDELIVERABLE, v.REJECTED_BY_REGISTRY} <= v.REASONS
    assert v.INVALID_JSON == "invalid_json"  # the header and metric label format


def nested(depth: int):
    value = {"leaf": 1}
    for index in range(depth - 1):
        value = [value] if index % 2 else {"k": value}
    return value


def test_message_may_nest_up_to_the_limit():
    assert parse_message(encode({**VALID, "message": nested(limits.MAX_DEPTH)}), 10**6).message == nested(
        limits.MAX_DEPTH
    )


@pytest.mark.parametrize(
    "raw, named",
    [
        # Deeper than the limit (49 levels used to be retried for ever: protobuf could not carry it).
        (encode({**VALID, "message": nested(limits.MAX_DEPTH + 1)}), "deeper"),
        (encode({**VALID, "message": nested(49)}), "deeper"),
        # Python's json writes these by default; protobuf's Value cannot hold them.
        (
            b'{"application": "policies", "event_type": "policy-triggered", "level": "critical", '
            b'"timestamp": "2026-11-27T10:00:00Z", "account_id": "000001", "message": {"x": NaN}}',
            "finite",
        ),
        (encode({**VALID, "message": [1, float("inf")]}), "finite"),
        (encode({**VALID, "message": {"x": -float("inf")}}), "finite"),
        (encode({**VALID, "message": {"x": 10**400}}), "too large"),
        (encode({**VALID, "message": {"x": 1}}).replace(b'{"x": 1}', b'{"x": 1e999}'), "finite"),
        (encode({**VALID, "message": {"x": 1}}).replace(b'{"x": 1}', b'{"x": "\\ud800"}'), "surrogate"),
    ],
)
def test_message_beyond_the_limits_is_an_invalid_value(raw, named):
    rejected = rejection(raw, max_bytes=10**6)
    assert (rejected.reason, rejected.field) == (v.INVALID_VALUE, "message")
    assert named in rejected.description


@pytest.mark.parametrize("field", ["application", "event_type", "level", "account_id", "id"])
@pytest.mark.parametrize("character", ["\\u0000", "\\u0007", "\\u007f", "\\u0085", "\\ud800"])  # JSON escapes
def test_names_and_ids_may_not_hold_control_characters_or_surrogates(field, character):
    raw = encode({**VALID, field: "a"}).replace(b'"a"', f'"a{character}b"'.encode(), 1)
    rejected = rejection(raw)
    assert (rejected.reason, rejected.field) == (v.INVALID_VALUE, field)
    assert "U+" in rejected.description


def test_timestamp_offsets_are_kept_exactly():
    stamp = parse_message(encode({**VALID, "timestamp": "2026-11-27T10:00:00-05:00"}), 1024).timestamp
    assert stamp.utcoffset() == timedelta(hours=-5)
