"""The sender's durations end in _seconds like every other; the old variable names
(HOOKS_SENDER_LEASE, HOOKS_SENDER_POLL_INTERVAL, HOOKS_SENDER_ATTEMPT_TIMEOUT, HOOKS_SENDER_MAX_RETRY_AFTER)
are still read for a release, with one warning a process that names the new one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.sender.settings import SenderSettings

ROOT = Path(__file__).resolve().parents[2]
RENAMED = {
    "HOOKS_SENDER_LEASE": ("HOOKS_SENDER_LEASE_SECONDS", "sender_lease_seconds"),
    "HOOKS_SENDER_POLL_INTERVAL": ("HOOKS_SENDER_POLL_INTERVAL_SECONDS", "sender_poll_interval_seconds"),
    "HOOKS_SENDER_ATTEMPT_TIMEOUT": ("HOOKS_SENDER_ATTEMPT_TIMEOUT_SECONDS", "sender_attempt_timeout_seconds"),
    "HOOKS_SENDER_MAX_RETRY_AFTER": ("HOOKS_SENDER_MAX_RETRY_AFTER_SECONDS", "sender_max_retry_after_seconds"),
}
#: Reads the settings twice in one process and prints the four values.
READ_TWICE = (
    "from services.sender.settings import SenderSettings\n"
    "SenderSettings()\n"
    "s = SenderSettings()\n"
    "print(s.sender_lease_seconds, s.sender_poll_interval_seconds, s.sender_attempt_timeout_seconds,"
    " s.sender_max_retry_after_seconds)\n"
)


def read_settings(variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A fresh process (the warnings are once a process) that reads the settings with `variables` set."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("HOOKS_SENDER_")}
    return subprocess.run(
        [sys.executable, "-c", READ_TWICE],
        env={**env, **variables},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )


def test_the_new_names_are_read_without_a_warning():
    result = read_settings({new: str(index + 2) for index, (new, _) in enumerate(RENAMED.values())})
    assert result.stdout.split() == ["2.0", "3.0", "4.0", "5.0"]
    assert "deprecated" not in result.stderr


def test_the_old_names_still_work_and_each_warns_once_naming_the_new_one():
    result = read_settings({old: str(index + 2) for index, old in enumerate(RENAMED)})
    assert result.stdout.split() == ["2.0", "3.0", "4.0", "5.0"]
    for old, (new, _) in RENAMED.items():
        warnings = [line for line in result.stderr.splitlines() if f"{old} is deprecated" in line]
        assert len(warnings) == 1, result.stderr
        assert f"set {new} instead" in warnings[0]


def test_the_new_name_wins_over_the_old_one():
    result = read_settings({"HOOKS_SENDER_LEASE": "2", "HOOKS_SENDER_LEASE_SECONDS": "7"})
    assert result.stdout.split()[0] == "7.0"


@pytest.mark.parametrize(("old", "new"), [(old.lower()[len("hooks_") :], field) for old, (_, field) in RENAMED.items()])
def test_old_keywords_still_work(old, new):
    assert getattr(SenderSettings(**{old: 9.5}), new) == 9.5
    assert getattr(SenderSettings(**{new: 8.5}), new) == 8.5


def test_text_settings_are_checked_at_start():
    for field, bad in [
        ("sender_retry_schedule", "5s,soon"),
        ("sender_disable_after", "forever"),
        ("sender_email_rate_limit", "lots"),
        ("sender_allowed_networks", "10.0.0.0/33"),
        ("sender_lane_backlog", 0),
    ]:
        with pytest.raises(ValueError, match=field):
            SenderSettings(**{field: bad})
