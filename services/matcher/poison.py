"""Telling an outage from a poison: when a message's own failures are given up on.

A registry or sender that is down is waited out, however long it is down: a failure with a code of
OUTAGE_CODES (UNAVAILABLE, DEADLINE_EXCEEDED - no answer in time -, CANCELLED) never counts against
the message. Any other failure (INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED, a stream that breaks with
such a code...) is the message's own only when the same service served others since the message's
previous failure (its `Successes` moved on: the registry answered another question, a sender
acknowledged another request), so a service that refuses everything is waited out like an outage.
After OWN_FAILURES_LIMIT failures of its own a message is dead-lettered (`rejected_by_registry`,
`undeliverable`) with a sentence saying why.

With the matcher's backoff (0.1 s doubling up to HOOKS_MATCHER_MAX_BACKOFF_SECONDS, jittered) the five
tries of a poison take about 1.5 s of waiting, once others are being served. While it retries, a message that has failed on its own
does not take the room of new messages in the consumer (see consumer.OutboxConsumer).
"""

from __future__ import annotations

from google.rpc import code_pb2

#: Failures of its own (with others served in between) after which a message is given up on.
OWN_FAILURES_LIMIT = 5

#: google.rpc codes that mean the service is down or slow, not that the message is at fault.
OUTAGE_CODES = frozenset({code_pb2.UNAVAILABLE, code_pb2.DEADLINE_EXCEEDED, code_pb2.CANCELLED})


def is_outage(code: int) -> bool:
    """Whether a failure with this google.rpc code is waited out (never counted against a message)."""
    return code in OUTAGE_CODES


class Successes:
    """How many times a service (the registry, the senders) has served a request: the evidence that
    it works for others."""

    def __init__(self) -> None:
        self.count = 0

    def add(self) -> None:
        self.count += 1


class OwnFailures:
    """One message's failures at one service that are not an outage's."""

    def __init__(self, successes: Successes, limit: int = OWN_FAILURES_LIMIT):
        self._successes = successes
        self._limit = max(1, limit)
        self._seen = successes.count
        #: The failures counted as the message's own so far.
        self.count = 0

    def failed(self) -> bool:
        """Records a failure that is not an outage's: it counts when the service served others since the
        previous one (or since the message began). True once the message is to be given up on."""
        if self._successes.count > self._seen:
            self.count += 1
            self._seen = self._successes.count
        return self.count >= self._limit
