"""The grpcurl recipes of docs/operations.md: each a ```sh block whose `# recipe: <name>` line names it.

Every recipe reads its addresses (REGISTRY, SENDER, MATCHER), ACCOUNT and the ids it needs from the
environment, so a test can run it against servers on loopback.
"""

from __future__ import annotations

import re
from pathlib import Path

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
_BLOCK = re.compile(r"^```sh\n(.*?)^```", flags=re.S | re.M)
_MARKER = re.compile(r"^# recipe: (\S+)$", flags=re.M)


def recipes(path: Path = RUNBOOK) -> dict[str, str]:
    """name -> the shell text of the recipe."""
    found: dict[str, str] = {}
    for block in _BLOCK.findall(path.read_text()):
        marker = _MARKER.search(block)
        if marker is None:
            continue
        if marker.group(1) in found:
            raise ValueError(f"recipe {marker.group(1)} appears twice in {path}")
        found[marker.group(1)] = block
    return found
