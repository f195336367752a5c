"""What an attempt's outcome means for the delivery: done, try again later (and when), or give up.

2xx succeeds; 408, 429, 5xx, timeouts and connection errors are retried on the schedule (429 and
503 honour Retry-After, capped); 410 disables the endpoint; any other answer fails for good.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

JITTER = 0.2


class Verdict(enum.Enum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"
    GONE = "gone"  # 410: fail, and disable the endpoint


def verdict_for_status(http_status: int) -> Verdict:
    if 200 <= http_status < 300:
        return Verdict.SUCCEEDED
    if http_status == 410:
        return Verdict.GONE
    if http_status in (408, 429) or http_status >= 500:
        return Verdict.RETRY
    return Verdict.FAILED


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait per a Retry-After header (delta-seconds or an HTTP date); None when absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetrySchedule:
    delays: tuple[float, ...]
    max_retry_after: float

    def next_delay(self, attempts_made: int, retry_after: float | None = None) -> float | None:
        """Seconds until the next attempt after `attempts_made` attempts, or None when the schedule is
        exhausted. The scheduled delay gets ±20% jitter; a Retry-After (capped) replaces it."""
        if attempts_made < 1 or attempts_made > len(self.delays):
            return None
        if retry_after is not None:
            return min(retry_after, self.max_retry_after) * random.uniform(1.0, 1.0 + JITTER / 2)
        return self.delays[attempts_made - 1] * random.uniform(1.0 - JITTER, 1.0 + JITTER)
