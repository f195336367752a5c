"""The one way hooks applies an event type's JSON Schema to messages: jsonschema-rs, Draft 2020-12,
formats checked, and no `$ref` fetched from anywhere (a schema refers only inside itself).

Why not Python's `jsonschema`, which checks the schema's shape at registration
(`hooks_client.registration.check_schema`): it runs `pattern` with Python's backtracking `re` and
`uniqueItems` in quadratic time, so one message could hold the matcher's event loop, and every
account's deliveries, for minutes (`^(a|aa)+$` against 60 characters: hours; `uniqueItems` over 3,000
objects: 6 s). jsonschema-rs runs patterns with Rust's linear-time engine (and a backtracking limit for
look-arounds and back-references, past which the message breaks the schema), `uniqueItems` by hashing,
and is some 40 times faster per message. The registry compiles every schema it is given with it too, so
a schema the matcher could not apply is refused when registered.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

Validator = jsonschema_rs.Validator
SchemaError = jsonschema_rs.ValidationError


def _no_retrieval(uri: str) -> Any:
    raise ValueError(f"{uri} is not fetched: a schema's $ref may only point inside the schema")


def compile_schema(schema: dict[str, Any]) -> Validator:
    """The validator of `schema`; raises SchemaError (a ValueError) for one it cannot apply: a `$ref`
    to nothing or outside the schema, a pattern that is not a regular expression..."""
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True, retriever=_no_retrieval)


def schema_error_text(error: Exception) -> str:
    """The first line of a compile error (jsonschema-rs adds the schema location on later lines)."""
    return str(error).strip().split("\n", 1)[0]
