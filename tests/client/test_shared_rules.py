"""One implementation of the rules: the services use hooks_client's limits, envelope and registration
checks (the very objects), so what the client accepts the matcher accepts. What the rules say is tested in
tests/matcher/test_validation.py (through the matcher's names for them)."""

from __future__ import annotations

import pytest

import hooks_client.envelope as client
import hooks_client.limits as client_limits
import hooks_client.registration as client_registration
import services.common.limits as service_limits
import services.matcher.validation as matcher
import services.registry.validation as registry_validation

GOOD = {
    "id": "m-1", "application": "shop", "event_type": "order-placed", "level": "big", "account_id": "000001",
    "timestamp": "2026-12-01T10:00:00.123456789+01:00", "message": {"order": 1},
}  # fmt: skip


def test_the_services_use_the_clients_rules_themselves():
    for name in (
        "MAX_DEPTH",
        "MAX_MESSAGE_BYTES",
        "STRING_FIELDS",
        "string_problem",
        "text_problem",
        "json_value_problem",
        "json_type",
    ):
        assert getattr(service_limits, name) is getattr(client_limits, name), name
    for name in ("NAME_PATTERN", "check_text", "check_name", "check_title", "MAX_TITLE"):
        assert getattr(registry_validation, name) is getattr(client_registration, name), name
    for name in ("parse_message", "parse_timestamp", "Rejected", "IncomingMessage", "REASONS", "REQUIRED"):
        assert getattr(matcher, name) is getattr(client, name), name


def test_encode_is_what_the_matcher_accepts():
    document = client.build_envelope(id="i-1", application="shop", event_type="t", level="", account_id="1",
                               timestamp="2026-12-01T10:00:00Z", message={"é": ["ü", 1.5, None, True]})  # fmt: skip
    raw = client.encode(document)
    parsed = matcher.parse_message(raw, 256 * 1024)
    assert parsed.message == {"é": ["ü", 1.5, None, True]} and parsed.id == "i-1"


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_timestamp_outside_years_1_to_9999_in_utc_is_refused_before_sending(stamp):
    """Well-formed RFC 3339, but year 0 or 10000 in UTC: the client refuses it as the matcher does
    (invalid_timestamp), given as a string or as a datetime, instead of sending what a later stage
    could not carry."""
    with pytest.raises(client.Rejected) as refused:
        client.encode({**GOOD, "timestamp": stamp})
    assert refused.value.reason == client.INVALID_TIMESTAMP and refused.value.field == "timestamp"
    as_datetime = client.datetime.fromisoformat(stamp)
    with pytest.raises(client.Rejected) as refused:
        client.build_envelope(**{**GOOD, "timestamp": as_datetime})
    assert refused.value.reason == client.INVALID_TIMESTAMP and "out of range" in refused.value.description
