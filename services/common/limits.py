"""The limits every entry enforces: they live in the producers' package, `hooks_client.limits`, so that
an application checks its events with the very rules hooks applies (one implementation). This module
names them for the services."""

from __future__ import annotations

from hooks_client.limits import (
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    STRING_FIELDS,
    json_type,
    json_value_problem,
    string_problem,
    text_problem,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "STRING_FIELDS",
    "json_type",
    "json_value_problem",
    "string_problem",
    "text_problem",
]
