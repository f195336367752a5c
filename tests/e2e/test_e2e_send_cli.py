"""`hooks send` puts well-formed messages on the topic, and says so; a broker it cannot reach is an error."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
import uuid
from datetime import datetime

from confluent_kafka import Consumer

from tests.helpers.groups import SESSION_TIMEOUT_MS
from tests.helpers.processes import REPO


def hooks(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[dict]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"e2e-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
        }
    )
    consumer.subscribe([topic])
    found: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(100, timeout=0.5):
                if msg.error() is None:
                    found.append(json.loads(msg.value()))
    finally:
        consumer.close()
    return found


def test_send_produces_messages_in_the_incoming_format(kafka, topics):
    result = hooks(
        "send", "--application", "policies", "--event-type", "policy-triggered", "--account", "acct-7",
        "--count", "5", "--bootstrap-servers", kafka.bootstrap_servers, "--topic", topics["outbox"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sent 5 of 5" in result.stdout
    printed_ids = {line.strip() for line in result.stdout.splitlines()[1:]}

    messages = consume_all(kafka.bootstrap_servers, topics["outbox"], 5)
    assert len(messages) == 5
    assert {m["id"] for m in messages} == printed_ids
    for message in messages:
        assert set(message) == {"id", "application", "event_type", "level", "account_id", "timestamp", "message"}
        assert (message["application"], message["event_type"], message["level"], message["account_id"]) == (
            "policies", "policy-triggered", "", "acct-7",
        )  # fmt: skip
        assert uuid.UUID(message["id"]).version == 4
        assert datetime.fromisoformat(message["timestamp"]).tzinfo is not None  # RFC 3339, with its offset
        assert isinstance(message["message"], str) and message["message"]
    assert len({m["message"] for m in messages}) == 5  # each generated sentence numbers its message


def test_send_uses_the_given_text_and_level(kafka, topics):
    result = hooks(
        "send", "-a", "advisor", "-e", "new-recommendation", "-l", "critical", "-m", "Disk is full",
        "-b", kafka.bootstrap_servers, "-t", topics["outbox"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [message] = consume_all(kafka.bootstrap_servers, topics["outbox"], 1)
    assert (message["level"], message["message"], message["account_id"]) == ("critical", "Disk is full", "000001")


def test_send_fails_when_the_broker_does_not_confirm():
    result = hooks("send", "-a", "x", "-e", "y", "-b", "127.0.0.1:1", "--timeout", "2", "--count", "3")
    assert result.returncode == 1
    assert "sent 0 of 3" in result.stdout
    assert "Message timed out" in result.stderr


def test_send_rejects_bad_options():
    assert hooks("send", "-a", "x").returncode == 2  # no event type
    assert hooks("send", "-a", "x", "-e", "y", "--count", "0").returncode == 2
    assert hooks("send", "-a", "x", "-e", "y", "--rate", "-1").returncode == 2
    help_text = hooks("send", "--help").stdout
    for option in ("--application", "--event-type", "--level", "--account", "--message", "--count", "--rate",
                   "--bootstrap-servers", "--topic"):  # fmt: skip
        assert option in help_text


def test_send_paces_messages_at_the_given_rate(kafka, topics):
    started = time.monotonic()
    result = hooks("send", "-a", "x", "-e", "y", "--count", "6", "--rate", "10",
                   "-b", kafka.bootstrap_servers, "-t", topics["outbox"])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 0.5  # 6 messages at 10/s: the last one leaves 0.5 s after the first
    assert len(consume_all(kafka.bootstrap_servers, topics["outbox"], 6)) == 6


def on_a_terminal(*args: str, timeout: float = 60) -> tuple[int, str]:
    """`hooks ARGS` with stdout and stderr on a pseudo-terminal, as a person at a terminal runs it: its exit
    status and everything it printed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args], cwd=REPO, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower
    )
    os.close(follower)
    printed = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process has closed its end
            break
        if not chunk:
            break
        printed += chunk
    os.close(leader)
    return process.wait(timeout), printed.decode(errors="replace")


def test_send_shows_progress_on_a_terminal_only(kafka, topics):
    args = ("send", "-a", "shop", "-e", "placed", "--count", "40", "--rate", "200", "-b", kafka.bootstrap_servers)
    status, printed = on_a_terminal(*args, "-t", topics["outbox"])
    assert status == 0, printed
    assert "sending" in printed and "40/40" in printed and "#" * 30 in printed, printed
    assert "sent 40 of 40" in printed

    status, printed = on_a_terminal(*args, "-t", topics["outbox"], "--quiet")
    assert status == 0 and "sent 40 of 40" in printed and "sending" not in printed, printed
    piped = hooks(*args, "-t", topics["outbox"])  # not a terminal: a script's log gets the summary alone
    assert piped.returncode == 0 and "sending" not in piped.stdout + piped.stderr, piped.stderr
    assert len(consume_all(kafka.bootstrap_servers, topics["outbox"], 120)) == 120
