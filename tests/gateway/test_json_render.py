"""The fast response renderer prints exactly what json_format prints (every field, INPUT_ONLY ones
dropped), for every message type the gateway may answer with, filled with awkward values."""

from __future__ import annotations

import random

import pytest
from google.api import field_behavior_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from gateway.http_routes import default_file_descriptors
from gateway.json_render import to_json

FD = _descriptor.FieldDescriptor
STRINGS = ["", "plain", "ünïcødé ✓", 'quote " and \\ backslash', "\x00\x1f"]


def _messages():
    for file in default_file_descriptors():
        yield from file.message_types_by_name.values()
    yield status_pb2.Status.DESCRIPTOR


def _fill(message: Message, rng: random.Random, depth: int = 0) -> None:
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        message.FromSeconds(rng.randrange(0, 4_000_000_000))
        message.nanos = rng.choice([0, 1_000, 500_000_000])
        return
    if name == "google.protobuf.Duration":
        message.FromNanoseconds(rng.randrange(-(10**12), 10**12))
        return
    if name == "google.protobuf.FieldMask":
        message.paths.extend(["name", "enabled"])
        return
    if name == "google.protobuf.Value":
        json_format.ParseDict(rng.choice([None, 1.5, "text", [1, "a"], {"k": {"n": [True]}}]), message)
        return
    if name == "google.protobuf.Any":
        message.Pack(
            error_details_pb2.BadRequest(
                field_violations=[error_details_pb2.BadRequest.FieldViolation(field="f", description="d")]
            )
        )
        return
    for field in message.DESCRIPTOR.fields:
        if rng.random() < 0.25:
            continue  # left unset: defaults must print the same too
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for _ in range(rng.randrange(0, 3)):
                key = rng.choice(STRINGS[1:])
                if value_field.message_type is None:
                    getattr(message, field.name)[key] = _scalar(value_field, rng)
                else:
                    _fill(getattr(message, field.name)[key], rng, depth + 1)
            continue
        if field.message_type is not None:
            if depth > 3:
                continue
            if field.is_repeated:
                for _ in range(rng.randrange(0, 3)):
                    _fill(getattr(message, field.name).add(), rng, depth + 1)
            else:
                _fill(getattr(message, field.name), rng, depth + 1)
                getattr(message, field.name).SetInParent()
            continue
        if field.is_repeated:
            getattr(message, field.name).extend(_scalar(field, rng) for _ in range(rng.randrange(0, 3)))
        else:
            setattr(message, field.name, _scalar(field, rng))


def _scalar(field: FD, rng: random.Random):
    if field.enum_type is not None:
        return rng.choice([v.number for v in field.enum_type.values] + [99])  # 99: unknown, printed as a number
    if field.type == FD.TYPE_STRING:
        return rng.choice(STRINGS)
    if field.type == FD.TYPE_BYTES:
        return rng.choice([b"", b"\x00\xffbytes"])
    if field.type == FD.TYPE_BOOL:
        return rng.choice([True, False])
    if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return rng.choice(
            [0.0, 0.1, -2.5, float("inf"), float("nan"), 1e300 if field.type == FD.TYPE_DOUBLE else 3.4e38]
        )
    if field.type in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return rng.choice([0, -1, 2**63 - 1, -(2**63)])
    if field.type in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return rng.choice([0, 2**64 - 1])
    if field.type in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return rng.choice([0, 2**32 - 1])
    return rng.choice([0, -1, 2**31 - 1, -(2**31)])


def _without_input_only(descriptor, document):
    if not isinstance(document, dict) or descriptor.full_name.startswith("google.protobuf."):
        return document
    result = {}
    for field in descriptor.fields:
        if field.json_name not in document:
            continue
        if field_behavior_pb2.INPUT_ONLY in field.GetOptions().Extensions[field_behavior_pb2.field_behavior]:
            continue
        value = document[field.json_name]
        if field.message_type is not None and not field.message_type.GetOptions().map_entry:
            value = (
                [_without_input_only(field.message_type, v) for v in value]
                if field.is_repeated
                else _without_input_only(field.message_type, value)
            )
        elif field.message_type is not None:
            inner = field.message_type.fields_by_name["value"].message_type
            if inner is not None:
                value = {k: _without_input_only(inner, v) for k, v in value.items()}
        result[field.json_name] = value
    return result


@pytest.mark.parametrize("descriptor", list(_messages()), ids=lambda d: d.full_name)
def test_the_renderer_prints_what_json_format_prints(descriptor):
    _compare(descriptor)


def test_the_renderer_prints_what_json_format_prints_for_the_test_proto(echo_modules):
    echo_pb2, _ = echo_modules
    for descriptor in echo_pb2.DESCRIPTOR.message_types_by_name.values():
        _compare(descriptor)


def _compare(descriptor) -> None:
    cls = message_factory.GetMessageClass(descriptor)
    rng = random.Random(descriptor.full_name)
    for _ in range(30):
        message = cls()
        _fill(message, rng)
        expected = _without_input_only(
            descriptor, json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
        )
        assert to_json(message) == expected, message
    assert to_json(cls()) == _without_input_only(
        descriptor, json_format.MessageToDict(cls(), always_print_fields_with_no_presence=True)
    )


def test_secrets_are_never_printed():
    from hooks.registry.v1 import endpoints_pb2

    rendered = to_json(endpoints_pb2.GetEndpointResponse(endpoint=endpoints_pb2.Endpoint(name="x", secret="s3cr3t")))
    assert "secret" not in rendered["endpoint"] and rendered["endpoint"]["name"] == "x"
