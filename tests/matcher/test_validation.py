"""What an incoming message must be: each way of being wrong has its reason code and names the field."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

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
    assert message.timestamp == datetime(2026, 11, 27, 10, tzinfo=timezone.utc)
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
        ("2026-11-27T10:00:00+02:00", datetime(2026, 11, 27, 8, tzinfo=timezone.utc)),
        ("2026-11-27t10:00:00.123456789z", datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=timezone.utc)),
        ("2026-11-27T10:00:00.5-01:30", datetime(2026, 11, 27, 11, 30, 0, 500000, tzinfo=timezone.utc)),
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
    "reason, code, field",
    [
        ("application 'level-app' is not registered", v.UNKNOWN_APPLICATION, "application"),
        ("application 'a' has no event type 'level'", v.UNKNOWN_EVENT_TYPE, "event_type"),
        ("event type 'e' of application 'a' has no level 'x' (levels: low, high)", v.UNKNOWN_LEVEL, "level"),
        ("event type 'e' of application 'a' needs a level: one of low", v.UNKNOWN_LEVEL, "level"),
        ("event type 'e' of application 'a' has no levels, so level must be empty (got 'x')", v.UNKNOWN_LEVEL, "level"),
    ],
)
def test_registry_reasons_name_the_field(reason, code, field):
    names = {"application": "a", "event_type": "e", "level": "x"}
    if "level-app" in reason:
        names["application"] = "level-app"
    if "event type 'level'" in reason:
        names["event_type"] = "level"
    rejected = unregistered(reason, names["application"], names["event_type"], names["level"])
    assert (rejected.reason, rejected.field) == (code, field)
    assert f"'{field}'" in rejected.description


def test_timestamp_offsets_are_kept_exactly():
    stamp = parse_message(encode({**VALID, "timestamp": "2026-11-27T10:00:00-05:00"}), 1024).timestamp
    assert stamp.utcoffset() == timedelta(hours=-5)
