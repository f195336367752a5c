"""Responses as protobuf JSON, the hot path of every call: the output of
`json_format.MessageToDict(message, always_print_fields_with_no_presence=True)`, a few times faster.

json_format decides how to print each field anew for every value; here that decision is made once
per message type (a plan: each field's JSON name, whether it is printed when unset, and a function
for its values), and well-known types keep json_format's own rendering. Fields marked INPUT_ONLY
(secrets) are never printed. A test compares the output with json_format's on every message type.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import operator
from collections.abc import Callable
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import json_format
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

FD = _descriptor.FieldDescriptor

_INT64 = {FD.TYPE_INT64, FD.TYPE_UINT64, FD.TYPE_SINT64, FD.TYPE_FIXED64, FD.TYPE_SFIXED64}
# Well-known types whose JSON form is a string made by the message itself.
_AS_STRING = {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}


def to_json(message: Message) -> Any:
    """The message as a JSON-ready value (a dict, or a string/number/list for well-known types)."""
    return _renderer(message.DESCRIPTOR)(message)


@functools.cache
def _renderer(descriptor: _descriptor.Descriptor) -> Callable[[Message], Any]:
    if descriptor.full_name in _AS_STRING:
        return operator.methodcaller("ToJsonString")  # the well-known type's own (Message declares none)
    if descriptor.full_name.startswith("google.protobuf."):
        return lambda message: json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    plan: list[tuple[str, str, bool, Callable[[Any], Any]]] = []
    for field in descriptor.fields:
        if field_behavior_pb2.INPUT_ONLY in field.GetOptions().Extensions[field_behavior_pb2.field_behavior]:
            continue
        plan.append((field.name, field.json_name, field.has_presence, _field_renderer(field)))

    def render(message: Message) -> dict[str, Any]:
        document = {}
        for name, json_name, has_presence, convert in plan:
            if has_presence and not message.HasField(name):
                continue
            document[json_name] = convert(getattr(message, name))
        return document

    return render


def _field_renderer(field: _descriptor.FieldDescriptor) -> Callable[[Any], Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key = _map_key(field.message_type.fields_by_name["key"])
        value = _value_renderer(field.message_type.fields_by_name["value"])
        return lambda values: {key(k): value(v) for k, v in values.items()}
    single = _value_renderer(field)
    if field.is_repeated:
        return lambda values: [single(v) for v in values]
    return single


def _value_renderer(field: _descriptor.FieldDescriptor) -> Callable[[Any], Any]:
    if field.message_type is not None:
        descriptor = field.message_type
        return lambda value: _renderer(descriptor)(value)
    if field.enum_type is not None:
        by_number = {value.number: value.name for value in field.enum_type.values}
        if field.enum_type.full_name == "google.protobuf.NullValue":
            return lambda value: None
        return lambda value: by_number.get(value, value)
    kind = field.type
    if kind in _INT64:
        return str
    if kind == FD.TYPE_BYTES:
        return lambda value: base64.b64encode(value).decode("utf-8")
    if kind == FD.TYPE_DOUBLE:
        return _double
    if kind == FD.TYPE_FLOAT:
        return lambda value: _double(type_checkers.ToShortestFloat(value)) if math.isfinite(value) else _double(value)
    return _same


def _map_key(field: _descriptor.FieldDescriptor) -> Callable[[Any], str]:
    if field.type == FD.TYPE_BOOL:
        return lambda key: "true" if key else "false"
    return str


def _same(value: Any) -> Any:
    return value


def _double(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def json_body(value: Any) -> bytes:
    """A JSON response body: `value` as JSON, ending with a newline as a text response should (what a
    terminal shows after `curl` starts on a line of its own)."""
    return json.dumps(value).encode() + b"\n"
