"""Child processes that never outlive their parent (the embedded broker, `hooks run`'s services)."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
from collections.abc import Callable


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen: on Linux the child gets SIGTERM when the process that
    started it dies, even by SIGKILL, so a killed test run or `hooks run` leaves nothing behind.
    (The signal follows the thread that started the child: start children from the main thread.)"""
    return _die_with_parent if sys.platform == "linux" else None
