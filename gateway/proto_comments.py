"""The comments of the .proto files, by element name, for the OpenAPI document's descriptions.

Generated `_pb2` modules keep no source info, so at start-up the .proto files are compiled again
with `protoc --include_source_info` into a descriptor set (grpc_tools' bundled protoc), and each
service, method, message, field, enum and enum value is keyed by its full name (an enum value by
its enum's full name plus its own). Where grpc_tools is not installed (the production image), the
comments are read from the .proto text by `gateway.proto_source` instead, which gives the same
answers. Without the protos the document simply has no descriptions; nothing else depends on them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import descriptor_pb2

from services.common.logging import get_logger

log = get_logger(__name__)

# Field numbers of FileDescriptorProto / DescriptorProto / ... used in SourceCodeInfo paths.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE = 2
_SERVICE_METHOD = 2


def load_comments(proto_roots: Iterable[Path], include_paths: Iterable[Path] = ()) -> dict[str, str]:
    """Every leading comment of every .proto file under the roots (google/ imports excluded);
    imports are looked up in the roots, then in `include_paths`."""
    comments: dict[str, str] = {}
    proto_roots = [Path(r) for r in proto_roots]
    includes = [*proto_roots, *(Path(p) for p in include_paths)]
    for root in proto_roots:
        root = Path(root)
        files = sorted(p for p in root.rglob("*.proto") if "google" not in p.relative_to(root).parts)
        if not files:
            continue
        try:
            comments.update(_comments_by_protoc([root, *(p for p in includes if p != root)], files))
        except ImportError:
            comments.update(_comments_by_parser(files))
        except Exception as exc:  # noqa: BLE001 - descriptions are a nicety; never fail start-up for them
            log.warning("proto comments unavailable", root=str(root), error=str(exc))
    return comments


def _comments_by_protoc(includes: list[Path], files: list[Path]) -> dict[str, str]:
    comments: dict[str, str] = {}
    for file in _compile(includes, files).file:
        comments.update(comments_of_file(file))
    return comments


def _comments_by_parser(files: list[Path]) -> dict[str, str]:
    from gateway.proto_source import comments_of_files

    return {name: _clean(text) for name, text in comments_of_files(files).items()}


def _compile(includes: list[Path], files: list[Path]) -> descriptor_pb2.FileDescriptorSet:
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        code = protoc.main(
            [
                "protoc",
                *[f"-I{path.resolve()}" for path in includes if path.is_dir()],
                f"-I{well_known}",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                *[str(p.resolve()) for p in files],
            ]
        )
        if code != 0:
            raise RuntimeError(f"protoc exited with {code}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


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
        for i, nested in enumerate(proto.enum_type):
            enum(f"{full}.{nested.name}", nested, (*path, _MESSAGE_ENUM, i))

    for i, proto in enumerate(file.message_type):
        message(prefix + proto.name, proto, (_FILE_MESSAGE, i))
    for i, proto in enumerate(file.enum_type):
        enum(prefix + proto.name, proto, (_FILE_ENUM, i))
    for i, service in enumerate(file.service):
        full = prefix + service.name
        note(full, (_FILE_SERVICE, i))
        for j, method in enumerate(service.method):
            note(f"{full}.{method.name}", (_FILE_SERVICE, i, _SERVICE_METHOD, j))
    return names


def _clean(comment: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in comment.strip("\n").split("\n")]
    return "\n".join(lines).strip()
