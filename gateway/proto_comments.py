"""The comments of the protos, by element name, for the OpenAPI document's descriptions.

Generated `_pb2` modules keep no source info, so `make proto` also writes the descriptors with their
source info to gen/hooks/descriptor_set.binpb; each service, method, message, field, enum and enum
value is keyed here by its full name (an enum value by its enum's full name plus its own). Other
APIs fronted by the gateway (tests, tools) bring descriptor sets of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources

from google.protobuf import descriptor_pb2

from services.common.logging import get_logger

log = get_logger(__name__)

# Field numbers of FileDescriptorProto / DescriptorProto / ... used in SourceCodeInfo paths.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE = 2
_SERVICE_METHOD = 2


def hooks_descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """The hooks protos' descriptors with source info, as `make proto` generated them."""
    data = resources.files("hooks").joinpath("descriptor_set.binpb").read_bytes()
    return descriptor_pb2.FileDescriptorSet.FromString(data)


def load_comments(descriptor_sets: Iterable[descriptor_pb2.FileDescriptorSet]) -> dict[str, str]:
    """Every leading comment of every file in the sets."""
    comments: dict[str, str] = {}
    for descriptor_set in descriptor_sets:
        for file in descriptor_set.file:
            comments.update(comments_of_file(file))
    return comments


def comments_of_file(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    by_path = {
        tuple(location.path): _clean(location.leading_comments)
        for location in file.source_code_info.location
        if location.leading_comments.strip()
    }
    names: dict[str, str] = {}
    prefix = f"{file.package}." if file.package else ""

    def note(name: str, path: tuple[int, ...]) -> None:
        if path in by_path:
            names[name] = by_path[path]

    def enum(full: str, proto: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...]) -> None:
        note(full, path)
        for i, value in enumerate(proto.value):
            note(f"{full}.{value.name}", (*path, _ENUM_VALUE, i))

    def message(full: str, proto: descriptor_pb2.DescriptorProto, path: tuple[int, ...]) -> None:
        note(full, path)
        for i, field in enumerate(proto.field):
            note(f"{full}.{field.name}", (*path, _MESSAGE_FIELD, i))
        for i, nested in enumerate(proto.nested_type):
            message(f"{full}.{nested.name}", nested, (*path, _MESSAGE_NESTED, i))
        for i, nested_enum in enumerate(proto.enum_type):
            enum(f"{full}.{nested_enum.name}", nested_enum, (*path, _MESSAGE_ENUM, i))

    for i, proto in enumerate(file.message_type):
        message(prefix + proto.name, proto, (_FILE_MESSAGE, i))
    for i, enum_proto in enumerate(file.enum_type):
        enum(prefix + enum_proto.name, enum_proto, (_FILE_ENUM, i))
    for i, service in enumerate(file.service):
        full = prefix + service.name
        note(full, (_FILE_SERVICE, i))
        for j, method in enumerate(service.method):
            note(f"{full}.{method.name}", (_FILE_SERVICE, i, _SERVICE_METHOD, j))
    return names


def _clean(comment: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in comment.strip("\n").split("\n")]
    return "\n".join(lines).strip()
