"""HTTP request -> gRPC request message, and gRPC response -> JSON, following a route's http rule.

The request is assembled as one protobuf-JSON document, then parsed by `json_format` (which
accepts both the proto and the lowerCamelCase names, enums by name, well-known types as strings):
first the body (all of it with `body: "*"`, or under the named field), then query parameters for
the remaining fields (dotted paths for nested ones, repeated keys for repeated fields), and last
the path variables, which win.

An update's `update_mask` (AIP-134) is read here rather than by json_format: its paths may be
snake_case or lowerCamelCase, and a map key after a map field (`headers.X-Token`) is kept as it is.
When the request gives none, the mask is the fields present in the body (output-only ones ignored),
so `PATCH {"enabled": false}` changes that one field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import json_format
from google.protobuf.message import Message

from gateway import json_render
from gateway.errors import GatewayError, bad_request
from gateway.http_routes import Route
from services.common import paging
from services.common.errors import FieldViolations

FD = _descriptor.FieldDescriptor

#: Well-known message types whose JSON form is a string (or a scalar): settable from a query or path.
SCALAR_LIKE_MESSAGES = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
}

_INT_TYPES = {
    FD.TYPE_INT32,
    FD.TYPE_INT64,
    FD.TYPE_UINT32,
    FD.TYPE_UINT64,
    FD.TYPE_SINT32,
    FD.TYPE_SINT64,
    FD.TYPE_FIXED32,
    FD.TYPE_FIXED64,
    FD.TYPE_SFIXED32,
    FD.TYPE_SFIXED64,
}
_FLOAT_TYPES = {FD.TYPE_FLOAT, FD.TYPE_DOUBLE}
# What json_format raises on a document that does not fit the message (ParseError mostly; the rest
# for values of the wrong JSON type deep inside, or nesting too deep to walk).
_UNPARSABLE = (json_format.ParseError, TypeError, ValueError, AttributeError, KeyError, OverflowError, RecursionError)


def build_request(
    route: Route,
    variables: Mapping[str, str],
    query: Mapping[str, list[str]],
    body: bytes,
) -> Message:
    """The request message, or raises GatewayError (400) saying what is wrong with the HTTP request."""
    descriptor = route.method.input_type
    document: dict[str, Any] = {}
    if route.body and body.strip():
        value = _parse_body(body)
        if route.body == "*":
            if not isinstance(value, dict):
                raise bad_request("the request body must be a JSON object")
            document = value
        else:
            document[route.body] = value
    elif route.body not in ("", "*"):
        # The body is the resource created or changed (the OpenAPI document says it is required).
        raise bad_request(
            f"the request body is required: the {route.body} as a JSON object", [(route.body, "is required")]
        )
    bound = set(variables)
    for key, values in query.items():
        _set_query_parameter(document, descriptor, route, key, values, bound)
    mask = _update_mask(descriptor, route, document)
    _check_strictly(descriptor, document, "")
    for field_path, raw in variables.items():
        field = _walk(descriptor, field_path.split("."))[-1]
        _place(document, descriptor, field_path.split("."), _scalar(field, raw, field_path))
    message = route.request_class()
    try:
        json_format.ParseDict(document, message)
    except _UNPARSABLE as exc:
        # Only now is the document walked again, for an error that names the field and what it wants.
        problems: list[tuple[str, str]] = []
        _check_shape(descriptor, document, "", problems)
        if problems:
            raise bad_request("invalid request: " + "; ".join(f"{f}: {d}" for f, d in problems), problems) from exc
        raise bad_request(f"invalid request: {exc}") from exc
    if mask is not None:
        getattr(message, UPDATE_MASK).paths.extend(mask)
    _check_page_size(message)
    return message


#: Message types whose JSON form is any JSON value: nothing to check of their shape here.
FREE_FORM_MESSAGES = {
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.Any",
}
#: At most this many shape problems are listed (the rest would say the same).
MAX_SHAPE_PROBLEMS = 20


def _check_shape(
    descriptor: _descriptor.Descriptor, document: dict[str, Any], prefix: str, problems: list[tuple[str, str]]
) -> None:
    """What json_format would refuse with a message naming no field ("has no field named 'h'" for a
    string where a message goes) or no choice ("Invalid enum value"): each problem with the field's
    JSON path and what it wants. Unknown fields are left to json_format, which names them."""
    for key, value in document.items():
        if len(problems) >= MAX_SHAPE_PROBLEMS:
            return
        field = descriptor.fields_by_name.get(key) or next((f for f in descriptor.fields if f.json_name == key), None)
        if field is None or value is None:
            continue
        name = prefix + field.json_name
        entry = (
            field.message_type if field.message_type is not None and field.message_type.GetOptions().map_entry else None
        )
        if entry is not None:
            if not isinstance(value, dict):
                problems.append((name, "must be a JSON object (a map)"))
                continue
            value_field = entry.fields_by_name["value"]
            for map_key, item in value.items():
                _check_value(value_field, item, f"{name}.{map_key}", problems)
        elif field.is_repeated:
            if not isinstance(value, list):
                problems.append((name, "must be a JSON array"))
                continue
            for index, item in enumerate(value):
                _check_value(field, item, f"{name}[{index}]", problems)
        else:
            _check_value(field, value, name, problems)


def _enum_problem(enum: _descriptor.EnumDescriptor, value: Any) -> str | None:
    """What is wrong with `value` as the name of one of the enum's values, or None."""
    if isinstance(value, str) and value in enum.values_by_name:
        return None
    choices = ", ".join(v.name for v in enum.values if not v.name.endswith("_UNSPECIFIED"))
    if isinstance(value, str):
        return f"{value[:100]!r} is not one of {choices}"
    return f"must be one of {choices} (a name, not a number)"


def _check_value(field: _descriptor.FieldDescriptor, value: Any, name: str, problems: list[tuple[str, str]]) -> None:
    if field.enum_type is not None:
        problem = _enum_problem(field.enum_type, value)
        if problem:
            problems.append((name, problem))
        return
    message = field.message_type
    if message is None or message.full_name in SCALAR_LIKE_MESSAGES or message.full_name in FREE_FORM_MESSAGES:
        return
    if not isinstance(value, dict):
        problems.append((name, f"must be a JSON object ({message.name})"))
        return
    _check_shape(message, value, name + ".", problems)


def _check_strictly(descriptor: _descriptor.Descriptor, document: dict[str, Any], prefix: str) -> None:
    """What json_format would take but the OpenAPI document does not offer, refused naming the field:
    an enum by its number (`?status=0`, `"type": 3`, even one no value has), which a caller would not
    mean, and a null for a field (json_format reads it as the field left out; only a JSON value
    field, google.protobuf.Value, holds a null)."""
    for key, value in document.items():
        field = descriptor.fields_by_name.get(key) or next((f for f in descriptor.fields if f.json_name == key), None)
        if field is None:
            continue  # json_format names an unknown field
        name = prefix + field.json_name
        message = field.message_type
        if value is None:
            if message is None or message.full_name != "google.protobuf.Value":
                raise bad_request(
                    f"invalid request: {name}: null is not a value here; leave the field out", [(name, "is null")]
                )
            continue
        if message is not None and message.GetOptions().map_entry:
            if isinstance(value, dict):
                value_field = message.fields_by_name["value"]
                for map_key, item in value.items():
                    _check_value_strictly(value_field, item, f"{name}.{map_key}")
        elif field.is_repeated:
            if isinstance(value, list):
                for index, item in enumerate(value):
                    _check_value_strictly(field, item, f"{name}[{index}]")
        else:
            _check_value_strictly(field, value, name)


def _check_value_strictly(field: _descriptor.FieldDescriptor, value: Any, name: str) -> None:
    if field.enum_type is not None:
        problem = _enum_problem(field.enum_type, value)
        if problem:
            raise bad_request(f"invalid request: {name}: {problem}", [(name, problem)])
        return
    message = field.message_type
    if message is not None and isinstance(value, dict) and message.full_name not in FREE_FORM_MESSAGES:
        _check_strictly(message, value, name + ".")


#: The field of an update request that names what it changes (AIP-134).
UPDATE_MASK = "update_mask"


def _update_mask(descriptor: _descriptor.Descriptor, route: Route, document: dict[str, Any]) -> list[str] | None:
    """The paths of an update's mask, taken out of `document` (None when the call has no mask): the
    given ones with each field named by its proto name, or the fields present in the body."""
    field = descriptor.fields_by_name.get(UPDATE_MASK)
    if field is None or field.message_type is None or field.message_type.full_name != "google.protobuf.FieldMask":
        return None
    given = [document.pop(alias) for alias in (field.name, field.json_name) if alias in document]
    resource_field = descriptor.fields_by_name.get(route.body) if route.body and route.body != "*" else None
    resource = resource_field.message_type if resource_field is not None else None
    if given:
        if len(given) > 1 or not isinstance(given[0], str):
            raise bad_request("updateMask must be given once, as comma-separated field paths", [("updateMask", "")])
        paths = [path.strip() for path in given[0].split(",")]
        if not all(paths):
            raise bad_request(
                "updateMask names an empty path: give comma-separated field paths, or leave it out",
                [("updateMask", "has an empty path")],
            )
        return [_mask_path(resource, path) for path in paths]
    body = document.get(route.body) if resource is not None and route.body else None
    if resource is None or not isinstance(body, dict):
        return []
    present = []
    for key in body:
        named = resource.fields_by_name.get(key) or next((f for f in resource.fields if f.json_name == key), None)
        if named is not None and not _output_only(named) and named.name not in present:
            present.append(named.name)
    if not present:
        raise bad_request(
            "the body sets no field that can be changed: set one, or name them in updateMask",
            [("updateMask", "absent, and the body names no writable field")],
        )
    return present


def _mask_path(resource: _descriptor.Descriptor | None, path: str) -> str:
    """`path` with each field named by its proto name (it may be given in lowerCamelCase); what follows
    a map field is a key, kept as it is; a name that is no field is kept for the service to refuse."""
    names = path.split(".")
    current = resource
    for index, name in enumerate(names):
        if current is None:
            break
        field = current.fields_by_name.get(name) or next((f for f in current.fields if f.json_name == name), None)
        if field is None:
            break
        names[index] = field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            break
        current = field.message_type
    return ".".join(names)


def _output_only(field: _descriptor.FieldDescriptor) -> bool:
    behaviours = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.OUTPUT_ONLY in behaviours


def render(route: Route, response: Message) -> Any:
    """The response as protobuf JSON (every field printed, INPUT_ONLY ones never); only the
    `response_body` field of it when the rule names one."""
    if route.response_body:
        field = route.method.output_type.fields_by_name[route.response_body]
        if field.message_type is not None and not field.is_repeated:
            return _to_json(getattr(response, route.response_body))
        return _to_json(response).get(field.json_name)
    return _to_json(response)


def _to_json(message: Message) -> Any:
    return json_render.to_json(message)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:40]} is too large for a number (more than a double holds)")
    return value


def _parse_body(body: bytes) -> Any:
    """The body as JSON, strictly: NaN, Infinity and numbers that overflow a double are not JSON."""
    if not body.strip():
        return None
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad_request(f"the request body is not JSON: {exc}") from exc


def _set_query_parameter(
    document: dict[str, Any],
    descriptor: _descriptor.Descriptor,
    route: Route,
    key: str,
    values: list[str],
    bound: set[str],
) -> None:
    if route.body == "*":
        raise bad_request(
            f"unknown query parameter {key!r}: every field of this call is in the body",
            [(key, "not a query parameter of this call")],
        )
    names = key.split(".")
    try:
        fields = _walk(descriptor, names)
    except KeyError:
        raise bad_request(f"unknown query parameter {key!r}", [(key, "no such field")]) from None
    path = ".".join(f.name for f in fields)
    if fields[0].name == route.body or any(
        path == name or path.startswith(name + ".") or name.startswith(path + ".") for name in bound
    ):
        raise bad_request(
            f"query parameter {key!r} names a field set by the path or the body",
            [(key, "set by the path or the body")],
        )
    leaf = fields[-1]
    if leaf.message_type is not None and (
        leaf.message_type.GetOptions().map_entry or leaf.message_type.full_name not in SCALAR_LIKE_MESSAGES
    ):
        raise bad_request(f"query parameter {key!r} is not a scalar field", [(key, "not settable from a query")])
    if leaf.is_repeated:
        value: Any = [_scalar(leaf, v, key) for v in values]
    else:
        if len(values) > 1:
            raise bad_request(f"query parameter {key!r} is given more than once", [(key, "not repeated")])
        value = _scalar(leaf, values[0], key)
    _place(document, descriptor, [f.name for f in fields], value)


def _walk(descriptor: _descriptor.Descriptor, names: list[str]) -> list[_descriptor.FieldDescriptor]:
    """The fields a dotted path goes through (by proto or JSON name); KeyError when it goes nowhere."""
    fields = []
    current: _descriptor.Descriptor | None = descriptor
    for depth, name in enumerate(names):
        if current is None:
            raise KeyError(name)
        field = current.fields_by_name.get(name)
        if field is None:
            field = next((f for f in current.fields if f.json_name == name), None)
        if field is None:
            raise KeyError(name)
        if depth < len(names) - 1 and (field.is_repeated or field.message_type is None):
            raise KeyError(name)
        fields.append(field)
        current = field.message_type
    return fields


def _place(document: dict, descriptor: _descriptor.Descriptor, names: list[str], value: Any) -> None:
    """Sets document[a][b]... = value, replacing whatever the body had under either name of each step."""
    fields = _walk(descriptor, names)
    node = document
    for depth, field in enumerate(fields):
        aliases = [field.name, field.json_name]
        if depth == len(fields) - 1:
            for alias in aliases:
                node.pop(alias, None)
            node[field.name] = value
            return
        child = None
        for alias in aliases:
            if alias in node:
                child = node.pop(alias)
        if child is None:
            child = {}
        if not isinstance(child, dict):
            raise bad_request(f"{'.'.join(names[: depth + 1])} must be a JSON object")
        node[field.name] = child
        node = child


def _scalar(field: _descriptor.FieldDescriptor, raw: str, name: str) -> Any:
    """A query or path string as the JSON value json_format expects for the field."""
    kind = field.type
    if field.message_type is not None:
        wrapped = field.message_type.fields_by_name.get("value")
        if field.message_type.full_name.endswith("Value") and wrapped is not None:
            return _scalar(wrapped, raw, name)
        return raw
    try:
        if kind in _INT_TYPES:
            return int(raw)
        if kind in _FLOAT_TYPES:
            return float(raw)
    except ValueError:
        raise bad_request(f"{name}: {raw!r} is not a number", [(name, "not a number")]) from None
    if kind == FD.TYPE_BOOL:
        lowered = raw.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise bad_request(f"{name}: {raw!r} is not true or false", [(name, "not true or false")])
    return raw


def _check_page_size(message: Message) -> None:
    """A list call's page_size, checked as every service checks it (services.common.paging: one cap,
    one error), before the call."""
    field = message.DESCRIPTOR.fields_by_name.get("page_size")
    if field is None or field.type not in _INT_TYPES or field.is_repeated:
        return
    try:
        paging.check_page_size(getattr(message, field.name))
    except FieldViolations as exc:
        status = exc.to_status()
        raise GatewayError(400, status.code, status.message, exc.violations) from None
