"""Event-type JSON Schemas: each message's `message` is checked against its event type's schema.

The registry's ResolveRoutes answers the event type's `schema_version` (the hex SHA-256 of its schema's
canonical JSON; empty without a schema), which the route cache keeps with the routes: a message of an
event type without a schema costs nothing more, one with a schema a lookup by version. A version not
compiled yet is asked of the registry (ResolveRoutes `with_schema`; one question per version at a time,
registry outages waited out as for routes), compiled into a Draft 2020-12 validator with format checks
(services.common.json_schemas: linear-time patterns, so no message holds the matcher up), and kept in
an LRU of `size` versions (versions come from producers' registrations: the
LRU bounds them). Re-registering an application with another schema changes the version; the
registry's change stream drops the cached routes (services.matcher.route_cache), so the next messages are
checked against the new one.

A message that breaks its schema raises Rejected with reason `schema_violation`, a description naming
the JSON pointer of the first error in `message` (e.g. `/items/0/price`), and the field path `message`
followed by that pointer (`message/items/0/price`): the consumer dead-letters it, PublishMessage answers
INVALID_ARGUMENT naming that field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format

from services.common.json_schemas import SchemaError, Validator, compile_schema, schema_error_text
from services.common.lru import LruCache
from services.matcher.route_cache import RouteCache, RouteKey, one_at_a_time
from services.matcher.validation import PROCESSING_ERROR, SCHEMA_VIOLATION, Rejected

#: Compiled schema versions kept (least recently used dropped first).
MAX_VALIDATORS = 1000
#: Longest JSON pointer and error sentence quoted in a description (an instance may be large).
MAX_QUOTED_CHARS = 300


def json_pointer(path: Iterable[str | int]) -> str:
    """RFC 6901: "" for the whole value, "/items/0/price" for a member of a member."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _quoted(text: str) -> str:
    return text if len(text) <= MAX_QUOTED_CHARS else text[: MAX_QUOTED_CHARS - 1] + "…"


class SchemaValidators:
    """The compiled schemas of the event types, by schema_version."""

    def __init__(self, routes: RouteCache, *, size: int = MAX_VALIDATORS):
        """`routes` asks the registry for a schema not compiled yet; `size` bounds the versions kept."""
        self._routes = routes
        #: A version's validator, or why its schema cannot be applied (one the registry stored before
        #: it compiled schemas as the matcher does).
        self._compiled: LruCache[str, Validator | str] = LruCache(size)
        self._compiling: dict[str, asyncio.Future[Validator | str | None]] = {}

    async def check(self, key: RouteKey, version: str, message: Any) -> None:
        """Raises Rejected when `message` breaks the schema `version` of the event type of `key`
        (account, application, event type, level); nothing to do for an empty version. Asking the
        registry for the schema may raise RegistryRejected or RegistryFailed, as resolving does."""
        if not version:
            return
        validator = self._compiled.get(version)
        if validator is None:
            validator = await one_at_a_time(self._compiling, version, lambda: self._compile(key))
            if validator is None:  # the schema was removed meanwhile
                return
        if isinstance(validator, str):  # the schema's fault (e.g. a $ref to nothing), not the message's
            raise Rejected(
                PROCESSING_ERROR,
                f"field 'message' could not be checked against the schema of {_event_type(key)}: {_quoted(validator)}",
                "message",
            )
        error = next(iter(validator.iter_errors(message)), None)
        if error is not None:
            pointer = _quoted(json_pointer(error.instance_path))
            where = f"at {pointer}" if pointer else "as a whole"
            raise Rejected(
                SCHEMA_VIOLATION,
                f"field 'message' {where} breaks the schema of {_event_type(key)}: {_quoted(error.message)}",
                "message" + pointer,
            )

    async def _compile(self, key: RouteKey) -> Validator | str | None:
        """The validator of the event type's current schema, or why it cannot be applied (kept by the
        version the registry names with it, which is newer than the one asked for if the application was
        registered again meanwhile)."""
        response = await self._routes.ask_schema(key)
        if not response.schema_version:
            return None
        schema = json_format.MessageToDict(response.schema)
        validator: Validator | str
        try:
            validator = compile_schema(schema)
        except SchemaError as exc:
            validator = schema_error_text(exc)
        self._compiled.put(response.schema_version, validator)
        return validator


def _event_type(key: RouteKey) -> str:
    return f"{key[1]}/{key[2]}"
