"""The rules behind retries and the SSRF guard, case by case (no servers needed)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from services.common.network_policy import NetworkPolicy
from services.sender.durations import parse_duration, parse_schedule
from services.sender.retry_policy import RetrySchedule, Verdict, parse_retry_after, verdict_for_status
from services.sender.settings import SenderSettings


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.SUCCEEDED),
        (204, Verdict.SUCCEEDED),
        (301, Verdict.FAILED),
        (400, Verdict.FAILED),
        (401, Verdict.FAILED),
        (404, Verdict.FAILED),
        (408, Verdict.RETRY),
        (410, Verdict.GONE),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (502, Verdict.RETRY),
        (503, Verdict.RETRY),
    ],
)
def test_what_an_answer_means(status, verdict):
    assert verdict_for_status(status) is verdict


def test_retry_after_in_seconds_or_as_a_date():
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None


def test_the_schedule_with_jitter_and_a_capped_retry_after():
    schedule = RetrySchedule((5.0, 300.0), max_retry_after=60.0)
    for _ in range(200):
        assert 4.0 <= schedule.next_delay(1) <= 6.0
        assert 240.0 <= schedule.next_delay(2) <= 360.0
        assert 60.0 <= schedule.next_delay(1, retry_after=3600) <= 66.0
    assert schedule.next_delay(3) is None  # exhausted after the first try and two retries


def test_durations_and_the_default_schedule():
    assert parse_duration("250ms") == 0.25
    assert parse_duration("5d") == 5 * 86400
    assert parse_duration("1.5") == 1.5
    assert parse_schedule("5s,5m,30m,2h,5h,10h,10h") == (5, 300, 1800, 7200, 18000, 36000, 36000)
    with pytest.raises(ValueError):
        parse_duration("five minutes")
    settings = SenderSettings()
    assert settings.retry_delays == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert settings.disable_after_seconds == 5 * 86400
    with pytest.raises(ValueError):
        SenderSettings(sender_retry_schedule="5s,often")
    with pytest.raises(ValueError):
        SenderSettings(sender_allowed_networks="10.0.0.0/33")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.0.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("100.64.0.1", "shared"),
    ],
)
def test_inner_addresses_are_refused(address, reason):
    refusal = NetworkPolicy().check(address)
    assert refusal is not None and reason in refusal


def test_public_and_allowed_addresses_pass():
    assert NetworkPolicy().check("93.184.215.14") is None
    assert NetworkPolicy().check("2606:2800:21f:cb07:6820:80da:af6b:8b2c") is None
    allowed = NetworkPolicy([ipaddress.ip_network("10.0.0.0/8")])
    assert allowed.check("10.1.2.3") is None
    assert allowed.check("192.168.0.1") is not None
