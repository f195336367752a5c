"""The delays between attempts at something that failed and may work later (a stream, a call)."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff_delays(initial: float = 0.1, maximum: float = 5.0) -> Iterator[float]:
    """Exponential delays with jitter, capped at `maximum`."""
    delay = initial
    while True:
        yield delay * random.uniform(0.5, 1.0)
        delay = min(maximum, delay * 2)
