"""The limits every entry enforces, agreed once: what an event may hold, however it arrives.

An event reaches hooks through Kafka (the matcher's consumer), `PublishMessage` (gRPC or the
gateway's POST /messages) or a sender's Deliver/DeliverBatch. Each entry checks it with these
functions, so a value one entry accepts can never crash a later stage:

- `message` (any JSON value) nests at most MAX_DEPTH arrays/objects deep (protobuf's parser stops
  at 100 levels, and each JSON level is two protobuf levels inside the Event, inside the request);
  its numbers are finite doubles (protobuf's `Value` has nothing else: NaN, Infinity and 1e999 are
  refused); its strings and keys are valid Unicode (no lone surrogates, which UTF-8 cannot carry).
- Names and ids (`application`, `event_type`, `level`, `account_id`, `id`) hold no control
  characters (C0, DEL, C1; NUL included: PostgreSQL's text cannot store it) and no surrogates.

Each check returns a sentence naming the problem (and the JSON path where one is needed), or None.
"""

from __future__ import annotations

import math
from typing import Any

#: Deepest nesting of arrays and objects in an event's `message`.
MAX_DEPTH = 32
#: Most bytes of an incoming message on `hooks.outbox` (the default of HOOKS_MATCHER_MAX_MESSAGE_BYTES).
MAX_MESSAGE_BYTES = 256 * 1024

#: Longest value (characters) of each name or id of an event, and whether it may be empty.
STRING_FIELDS: dict[str, tuple[int, bool]] = {
    "application": (255, True),
    "event_type": (255, True),
    "level": (255, False),
    "account_id": (64, True),
    "id": (200, False),
}


def _bad_character(value: str) -> str | None:
    """A description of the first character a name may not hold, or None."""
    for index, character in enumerate(value):
        point = ord(character)
        if point < 0x20 or 0x7F <= point <= 0x9F:
            return f"holds the control character U+{point:04X} at position {index}"
        if 0xD800 <= point <= 0xDFFF:
            return f"holds the lone surrogate U+{point:04X} at position {index}"
    return None


def string_problem(field: str, value: Any) -> str | None:
    """What is wrong with `value` as the name or id `field` of an event (see STRING_FIELDS), or None."""
    limit, required = STRING_FIELDS[field]
    if not isinstance(value, str):
        return f"field '{field}' must be a string, not {json_type(value)}"
    if required and not value.strip():
        return f"field '{field}' must not be empty"
    if len(value) > limit:
        return f"field '{field}' is longer than {limit} characters"
    bad = _bad_character(value)
    if bad:
        return f"field '{field}' {bad}"
    return None


def text_problem(value: str) -> str | None:
    """What makes `value` unfit for a stored text field (control characters, surrogates), or None."""
    return _bad_character(value)


def _surrogate(value: str) -> bool:
    # Fast path: text that encodes to UTF-8 holds no lone surrogate.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_value_problem(value: Any, field: str = "message", max_depth: int = MAX_DEPTH) -> str | None:
    """What makes `value` (decoded JSON) unfit to be carried as an event's message, or None.

    Walks the value without recursion, so any depth is answered, not crashed on."""
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= max_depth:
                return f"field '{path}' nests arrays and objects deeper than {max_depth} levels"
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"field '{path}' has a key that is not a string"
                if _surrogate(key):
                    return f"field '{path}' has a key that is not valid Unicode (a lone surrogate)"
                stack.append((child, f"{path}.{key}"[:200], depth + 1))
        elif isinstance(item, list):
            if depth >= max_depth:
                return f"field '{path}' nests arrays and objects deeper than {max_depth} levels"
            for index, child in enumerate(item):
                stack.append((child, f"{path}[{index}]"[:200], depth + 1))
        elif isinstance(item, str):
            if _surrogate(item):
                return f"field '{path}' is not valid Unicode (a lone surrogate)"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -1.7976931348623157e308 <= item <= 1.7976931348623157e308:
                return f"field '{path}' is a number too large to be carried (more than a double holds)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"field '{path}' is {item!r}: numbers must be finite (no NaN, Infinity or overflow)"
        else:
            return f"field '{path}' is not a JSON value ({type(item).__name__})"
    return None


def json_type(value: Any) -> str:
    """The JSON type of a decoded value, as a person says it ("a string", "an array")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
