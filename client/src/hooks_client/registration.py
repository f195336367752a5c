"""The registration document (the seed's YAML) and the rules an application definition must follow.

    application:
      name: policies            # immutable once registered
      title: Policies
    event_types:
      - id: policy-triggered
        title: Policy triggered
        levels: {}              # none
        schema:                 # optional: a JSON Schema (Draft 2020-12) for `message`
          type: object
          required: [policy_id]

`parse_registration()` turns a document into a `hooks.registry.v1.Application` and reports every
problem at once, each by its path in the document: unknown keys (a typo such as `event_type:` would
otherwise drop every event type, and with them the filters that name them), wrong shapes, and what
the registry refuses. `check_application()` is that last part, the registry's own check of a
definition (the registry calls it too: one implementation). A schema's content is checked with the
`jsonschema` package where it is installed (the registry always has it); without it, the registry's
answer reports a bad schema instead.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import json_format

from hooks.registry.v1 import applications_pb2
from hooks_client.limits import MAX_DEPTH, json_value_problem, text_problem

try:  # the registry always has it (pinned); a producer may not
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
except ImportError:  # pragma: no cover - exercised by the client's own fresh-venv test
    Draft202012Validator = None  # type: ignore[assignment,misc]
    SchemaError = None  # type: ignore[assignment,misc]

# Every pattern is applied with `fullmatch`: `$` would let a trailing newline through.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,100}")
NAME_RULE = "must be 1 to 100 characters of letters, digits, '_', '.' or '-'"
MAX_TITLE = 200
MAX_EVENT_TYPES = 500
MAX_LEVELS = 100
#: Largest JSON Schema of one event type, as canonical JSON (bytes).
MAX_SCHEMA_BYTES = 64 * 1024
#: Largest sum of an application's schemas (bytes), so one application stays a reasonable message.
MAX_SCHEMAS_BYTES = 1024 * 1024
#: The only JSON Schema dialect accepted (`$schema` may name it, or be left out).
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Largest registration file read (bytes).
MAX_DOCUMENT_BYTES = 1024 * 1024

#: The keys a registration document may hold, at each level (anything else is a typo, refused).
DOCUMENT_KEYS = ("application", "event_types")
APPLICATION_KEYS = ("name", "title")
EVENT_TYPE_KEYS = ("id", "title", "levels", "schema")
LEVEL_KEYS = ("id", "title")

#: Free text for people may span lines: tabs and line breaks are read as spaces by `check_text`.
LINE_BREAKS_AS_SPACES = str.maketrans("\t\n\r", "   ")


class Problems(Protocol):
    """Where checks put what they find: `add(field, description)` (the registry's FieldViolations fits)."""

    def add(self, field: str, description: str) -> None: ...


class _Problems(list):
    def add(self, field: str, description: str) -> None:
        self.append((field, description))


class InvalidRegistration(ValueError):
    """A registration document or definition that cannot be registered: `problems` lists every
    (path in the document, what is wrong)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{field}: {description}" for field, description in self.problems))


# -- the rules of a definition (the registry's) ----------------------------------------------------


def check_text(
    problems: Problems, field: str, value: str, *, limit: int, required: bool = False, line_breaks: bool = False
) -> None:
    """A stored text field: at most `limit` characters, no control characters (NUL included, which
    PostgreSQL's text cannot hold) unless `line_breaks` allows tabs and line breaks in it."""
    if required and not value.strip():
        problems.add(field, "is required")
        return
    if len(value) > limit:
        problems.add(field, f"must be at most {limit} characters")
        return
    bad = text_problem(value.translate(LINE_BREAKS_AS_SPACES) if line_breaks else value)
    if bad:
        problems.add(field, f"must not hold control characters ({bad})")


def check_name(problems: Problems, field: str, value: str) -> None:
    if not value:
        problems.add(field, "is required")
    elif not NAME_PATTERN.fullmatch(value):
        problems.add(field, NAME_RULE)


def check_title(problems: Problems, field: str, value: str) -> None:
    check_text(problems, field, value, limit=MAX_TITLE, required=True)


def schema_of(event_type: applications_pb2.EventType) -> dict[str, Any] | None:
    """The event type's JSON Schema as a JSON object, or None when it has none."""
    if not event_type.HasField("schema"):
        return None
    return json_format.MessageToDict(event_type.schema)


def canonical_json(schema: Mapping[str, Any]) -> bytes:
    """The schema's canonical JSON: sorted keys, no spaces, UTF-8 (what `schema_version` hashes)."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def schema_version(schema: Mapping[str, Any]) -> str:
    """What names a schema's content: the hex SHA-256 of its canonical JSON."""
    return hashlib.sha256(canonical_json(schema)).hexdigest()


def check_schema(problems: Problems, field: str, schema: Mapping[str, Any]) -> int:
    """A JSON Schema (Draft 2020-12) of an event type's `message`; returns its size in bytes."""
    problem = json_value_problem(schema, field=field, max_depth=MAX_DEPTH)
    if problem:
        problems.add(field, problem.removeprefix(f"field '{field}' "))
        return 0
    size = len(canonical_json(schema))
    if size > MAX_SCHEMA_BYTES:
        problems.add(field, f"is {size} bytes as JSON, more than the limit of {MAX_SCHEMA_BYTES}")
        return size
    dialect = schema.get("$schema")
    if dialect is not None and dialect not in (SCHEMA_DIALECT, SCHEMA_DIALECT + "#"):
        problems.add(
            field, f"declares $schema {str(dialect)[:200]!r}; only {SCHEMA_DIALECT} (Draft 2020-12) is supported"
        )
        return size
    if Draft202012Validator is not None:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            where = exc.json_path if exc.json_path != "$" else "the schema"
            problems.add(field, f"is not a valid JSON Schema (Draft 2020-12): {exc.message[:500]} (at {where})")
    return size


def check_application(application: applications_pb2.Application) -> list[tuple[str, str]]:
    """What the registry refuses in a definition, each (field of the Application message, why): names,
    titles, no duplicate ids, bounded sizes, and schemas that are valid JSON Schemas."""
    problems = _Problems()
    check_name(problems, "application.name", application.name)
    check_title(problems, "application.title", application.title)
    if len(application.event_types) > MAX_EVENT_TYPES:
        problems.add("application.event_types", f"must have at most {MAX_EVENT_TYPES} entries")
        return problems
    seen_types: dict[str, int] = {}
    schemas_bytes = 0
    for i, event_type in enumerate(application.event_types):
        where = f"application.event_types[{i}]"
        check_name(problems, f"{where}.id", event_type.id)
        if event_type.id and event_type.id in seen_types:
            problems.add(
                f"{where}.id", f"duplicates application.event_types[{seen_types[event_type.id]}].id {event_type.id!r}"
            )
        seen_types.setdefault(event_type.id, i)
        check_title(problems, f"{where}.title", event_type.title)
        schema = schema_of(event_type)
        if schema is not None:
            schemas_bytes += check_schema(problems, f"{where}.schema", schema)
        if len(event_type.levels) > MAX_LEVELS:
            problems.add(f"{where}.levels", f"must have at most {MAX_LEVELS} entries")
            continue
        seen_levels: dict[str, int] = {}
        for j, level in enumerate(event_type.levels):
            check_name(problems, f"{where}.levels[{j}].id", level.id)
            if level.id and level.id in seen_levels:
                problems.add(
                    f"{where}.levels[{j}].id", f"duplicates {where}.levels[{seen_levels[level.id]}].id {level.id!r}"
                )
            seen_levels.setdefault(level.id, j)
            check_title(problems, f"{where}.levels[{j}].title", level.title)
    if schemas_bytes > MAX_SCHEMAS_BYTES:
        problems.add(
            "application.event_types",
            f"schemas total {schemas_bytes} bytes, more than the limit of {MAX_SCHEMAS_BYTES}",
        )
    return problems


# -- the document -----------------------------------------------------------------------------------


def _unknown_keys(problems: Problems, where: str, mapping: Mapping, allowed: tuple[str, ...]) -> None:
    for key in mapping:
        name = str(key)
        if name in allowed:
            continue
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the keys here are {', '.join(allowed)}"
        problems.add(f"{where}{name}", f"unknown key; {hint}")


def _text(problems: Problems, where: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        problems.add(where, f"must be a text value, not a {'mapping' if isinstance(value, dict) else 'list'}")
        return ""
    return str(value)


def _entries(problems: Problems, where: str, value: Any, shape: str) -> list:
    """A list of the document; none (or {}) is an empty one."""
    if value is None or value == {}:
        return []
    if not isinstance(value, list):
        problems.add(where, f"must be a list of mappings with {shape}, or {{}} for none")
        return []
    return value


def _schema(problems: Problems, where: str, value: Any, into: applications_pb2.EventType) -> None:
    if not isinstance(value, Mapping):
        problems.add(where, "must be a mapping: a JSON Schema object such as {type: object}")
        return
    problem = json_value_problem(value, field=where, max_depth=MAX_DEPTH)
    if problem:  # e.g. a YAML date or a key that is not text: not JSON, so not a JSON Schema
        problems.add(where, problem.removeprefix(f"field '{where}' "))
        return
    into.schema.update(value)


def document_path(field: str) -> str:
    """A field of the Application message as the document names it (event types are top-level)."""
    return field.removeprefix("application.") if field.startswith("application.event_types") else field


def parse_registration(document: Any) -> applications_pb2.Application:
    """The seed's document as an Application message. `levels: {}` (or none) means no levels.

    Raises InvalidRegistration naming every problem of the document at once, by its path in the
    document (see the module)."""
    problems = _Problems()
    if not isinstance(document, Mapping):
        raise InvalidRegistration([("(document)", "must be a mapping with `application:` and `event_types:`")])
    _unknown_keys(problems, "", document, DOCUMENT_KEYS)
    result = applications_pb2.Application()
    app = document.get("application")
    if isinstance(app, Mapping):
        _unknown_keys(problems, "application.", app, APPLICATION_KEYS)
        result.name = _text(problems, "application.name", app.get("name"))
        result.title = _text(problems, "application.title", app.get("title"))
    else:
        problems.add("application", "must be a mapping with `name` and `title`")
    shape = "`id`, `title` and `levels` (and optionally `schema`)"
    for i, et in enumerate(_entries(problems, "event_types", document.get("event_types"), shape)):
        where = f"event_types[{i}]"
        message = result.event_types.add()  # even for a bad entry, so indexes stay the document's
        if not isinstance(et, Mapping):
            problems.add(where, f"must be a mapping with {shape}")
            continue
        _unknown_keys(problems, f"{where}.", et, EVENT_TYPE_KEYS)
        message.id = _text(problems, f"{where}.id", et.get("id"))
        message.title = _text(problems, f"{where}.title", et.get("title"))
        if et.get("schema") is not None:
            _schema(problems, f"{where}.schema", et["schema"], message)
        for j, level in enumerate(_entries(problems, f"{where}.levels", et.get("levels"), "`id` and `title`")):
            level_message = message.levels.add()
            if not isinstance(level, Mapping):
                problems.add(f"{where}.levels[{j}]", "must be a mapping with `id` and `title`")
                continue
            _unknown_keys(problems, f"{where}.levels[{j}].", level, LEVEL_KEYS)
            level_message.id = _text(problems, f"{where}.levels[{j}].id", level.get("id"))
            level_message.title = _text(problems, f"{where}.levels[{j}].title", level.get("title"))
    # What the registry would refuse too, except where the document's shape was already wrong.
    shape_problems = [field for field, _ in problems]
    for field, description in check_application(result):
        path = document_path(field)
        if not any(path == bad or path.startswith((f"{bad}.", f"{bad}[")) for bad in shape_problems):
            problems.add(path, description)
    if problems:
        raise InvalidRegistration(problems)
    return result


def load_registration(
    source: str | Path | Mapping[str, Any] | applications_pb2.Application,
) -> applications_pb2.Application:
    """The definition from a YAML file's path, a decoded document, or an Application message (checked
    with `check_application`); raises InvalidRegistration, or OSError for an unreadable file."""
    if isinstance(source, applications_pb2.Application):
        problems = check_application(source)
        if problems:
            raise InvalidRegistration([(document_path(field), description) for field, description in problems])
        return source
    if isinstance(source, Mapping):
        return parse_registration(source)
    import yaml

    path = Path(source)
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        raise InvalidRegistration([("(document)", f"{path} is larger than {MAX_DOCUMENT_BYTES} bytes")])
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InvalidRegistration([("(document)", f"{path} is not valid YAML: {exc}")]) from None
    return parse_registration(document)
