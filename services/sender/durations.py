"""Durations as people write them in settings: "500ms", "5s", "5m", "2h", "5d", or plain seconds.

The retry schedule and the disable-after period are given this way, so tests can use milliseconds
and production the Svix defaults, in the same notation; a rate is a count per such a duration ("100/1h").
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError when it is not a duration."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 5s, 5m, 2h, 5d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_schedule(text: str) -> tuple[float, ...]:
    """The delays (seconds) of a comma-separated schedule such as "5s,5m,30m"; empty means no retries."""
    return tuple(parse_duration(part) for part in text.split(",") if part.strip())


def parse_rate(text: str) -> tuple[int, float] | None:
    """(count, per seconds) of a rate such as "100/1h"; None for an empty one (no limit); raises
    ValueError when it is not a rate."""
    if not text.strip():
        return None
    count, slash, period = text.partition("/")
    if not slash or not count.strip().isdigit() or int(count) < 1:
        raise ValueError(f"not a rate: {text!r} (use a count of at least 1 per a duration, e.g. 100/1h or 20/1m)")
    seconds = parse_duration(period)
    if seconds <= 0:
        raise ValueError(f"not a rate: {text!r} (the period must be longer than 0)")
    return int(count), seconds
