"""How long the fuzz suite runs: hypothesis profiles, chosen by the environment.

- `suite` (the default, what `make test` runs): FUZZ_EXAMPLES examples per test and database
  (default 12, which keeps each database's run well within a minute and a half), random each run on
  a developer's machine, derandomized where CI=true so that a CI run's verdict is reproducible (and, as hypothesis requires
  of a derandomized run, with no example database).
  The shrinking of a failure is cut at SUITE_SHRINK_SECONDS (hypothesis has no setting for it; its
  engine's constant is lowered while a suite-profile test runs, see `fuzzing`), so a failing run
  still reports a counterexample within pytest's timeout.
- `fuzz` (`make fuzz`, FUZZ_PROFILE=fuzz): FUZZ_EXAMPLES examples (default 1,000) per test and
  database, random, every distinct bug reported, shrinking as long as hypothesis likes; and with
  FUZZ_SECONDS, hypothesis runs again and again (fresh random examples) until that many seconds
  have passed.

Failures are stored in var/hypothesis (not committed) and replayed first by the next run on the
same machine; `print_blob` prints what reproduces one anywhere (@reproduce_failure).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import core as hypothesis_core
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.internal.conjecture import engine
from hypothesis.vendor import pretty

ROOT = Path(__file__).resolve().parents[2]
PROFILE = os.environ.get("FUZZ_PROFILE", "suite")
SUITE_SHRINK_SECONDS = 45

DERANDOMIZE = os.environ.get("CI") == "true"
_common = dict(
    deadline=None,
    print_blob=True,
    # An example starts and awaits real services: slow by design. Data is small; size is in the rendering.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
settings.register_profile(
    "suite",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES") or 12),
    # Derandomized runs replay nothing: hypothesis refuses a database beside derandomize=True.
    derandomize=DERANDOMIZE,
    database=None if DERANDOMIZE else DirectoryBasedExampleDatabase(ROOT / "var" / "hypothesis"),
    report_multiple_bugs=False,
    **_common,
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES") or 1000),
    derandomize=False,
    database=DirectoryBasedExampleDatabase(ROOT / "var" / "hypothesis"),
    report_multiple_bugs=True,
    **_common,
)


def fuzz_settings() -> settings:
    """The settings of the profile FUZZ_PROFILE names (not loaded globally: other suites use hypothesis)."""
    return settings(settings.get_profile(PROFILE))


@contextlib.contextmanager
def fuzzing() -> Iterator[None]:
    """While a fuzz test runs: in the suite profile, hypothesis stops shrinking a failure after
    SUITE_SHRINK_SECONDS; and failing examples are printed. (schemathesis' pytest plugin swaps
    hypothesis' printer for one that prints nothing, for its own speed; ours is put back meanwhile.)"""
    saved_seconds, saved_printer = engine.MAX_SHRINKING_SECONDS, hypothesis_core.RepresentationPrinter
    if PROFILE == "suite":
        engine.MAX_SHRINKING_SECONDS = SUITE_SHRINK_SECONDS
    hypothesis_core.RepresentationPrinter = pretty.RepresentationPrinter
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS, hypothesis_core.RepresentationPrinter = saved_seconds, saved_printer


def rounds() -> Iterator[int]:
    """How many times to run a hypothesis test: once, or until FUZZ_SECONDS have passed."""
    end = time.monotonic() + float(os.environ.get("FUZZ_SECONDS") or 0)
    yield 0
    count = 1
    while time.monotonic() < end:
        yield count
        count += 1
