"""The OpenAPI 3 document of the HTTP API, generated from the same routes and the protos' comments.

Paths and parameters come from each route's template and http rule, exactly as the transcoder
reads them (path variables, query parameters for the remaining fields, the body mapping,
`response_body`); schemas are the protobuf JSON mapping of every message (lowerCamelCase names,
enums as names, 64-bit integers and well-known types as strings); descriptions are the comments.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor as _descriptor
from google.rpc import status_pb2

from gateway import path_template, sse
from gateway.http_routes import Route
from gateway.transcoder import SCALAR_LIKE_MESSAGES

FD = _descriptor.FieldDescriptor
OPENAPI_VERSION = "3.0.3"
SECURITY_SCHEME = "identity"
_MAX_QUERY_DEPTH = 3

_INT32 = {FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32}
_UINT32 = {FD.TYPE_UINT32, FD.TYPE_FIXED32}
_INT64 = {FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64}
_UINT64 = {FD.TYPE_UINT64, FD.TYPE_FIXED64}

WELL_KNOWN_SCHEMAS: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$", "example": "1.5s"},
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths, lowerCamelCase or snake_case (after a map field, its key as is, e.g. "
        "headers.X-Token). Absent on an update: the fields present in the body.",
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    "google.protobuf.DoubleValue": {"type": "number", "nullable": True},
    "google.protobuf.FloatValue": {"type": "number", "nullable": True},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64", "nullable": True},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64", "nullable": True},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32", "nullable": True},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "minimum": 0, "nullable": True},
    "google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
    "google.protobuf.StringValue": {"type": "string", "nullable": True},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte", "nullable": True},
}


def schema_name(descriptor: _descriptor.Descriptor | _descriptor.EnumDescriptor) -> str:
    return descriptor.full_name


def ref(descriptor: _descriptor.Descriptor | _descriptor.EnumDescriptor) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{schema_name(descriptor)}"}


def behaviors(field: _descriptor.FieldDescriptor) -> set[int]:
    return set(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


class OpenApiBuilder:
    def __init__(self, comments: Mapping[str, str], max_page_size: int | None = None):
        self.comments = comments
        self.max_page_size = max_page_size
        self.schemas: dict[str, dict[str, Any]] = {}

    # -- schemas ---------------------------------------------------------------------------
    def add_message(self, message: _descriptor.Descriptor) -> None:
        """The message's schema, and those of every message and enum it refers to."""
        pending = [message]
        while pending:
            current = pending.pop()
            name = schema_name(current)
            if name in self.schemas or current.full_name in WELL_KNOWN_SCHEMAS:
                continue
            schema: dict[str, Any] = {"type": "object", "properties": {}}
            self._describe(schema, current.full_name)
            required = []
            for field in current.fields:
                schema["properties"][field.json_name] = self.field_schema(field)
                if field_behavior_pb2.REQUIRED in behaviors(field):
                    required.append(field.json_name)
                for referred in self._referred(field):
                    if isinstance(referred, _descriptor.EnumDescriptor):
                        self.add_enum(referred)
                    else:
                        pending.append(referred)
            if required:
                schema["required"] = required
            self.schemas[name] = schema

    def add_enum(self, enum: _descriptor.EnumDescriptor) -> None:
        name = schema_name(enum)
        if name in self.schemas:
            return
        schema: dict[str, Any] = {"type": "string", "enum": [v.name for v in enum.values]}
        lines = [self.comments.get(enum.full_name, "")]
        for value in enum.values:
            comment = self.comments.get(f"{enum.full_name}.{value.name}")
            if comment:
                lines.append(f"- `{value.name}`: {' '.join(comment.split())}")
        description = "\n".join(line for line in lines if line)
        if description:
            schema["description"] = description
        if enum.full_name == "google.protobuf.NullValue":
            schema = {"nullable": True, "enum": [None]}
        self.schemas[name] = schema

    def _referred(
        self, field: _descriptor.FieldDescriptor
    ) -> Iterator[_descriptor.Descriptor | _descriptor.EnumDescriptor]:
        if field.enum_type is not None:
            yield field.enum_type
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                yield from self._referred(field.message_type.fields_by_name["value"])
            elif field.message_type.full_name not in WELL_KNOWN_SCHEMAS:
                yield field.message_type

    def field_schema(self, field: _descriptor.FieldDescriptor, with_notes: bool = True) -> dict[str, Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {"type": "object", "additionalProperties": self.single_schema(value)}
        elif field.is_repeated:
            schema = {"type": "array", "items": self.single_schema(field)}
        else:
            schema = self.single_schema(field)
        if not with_notes:
            return schema
        notes: dict[str, Any] = {}
        comment = self.comments.get(field.full_name)
        if comment:
            notes["description"] = comment
        kinds = behaviors(field)
        if field_behavior_pb2.OUTPUT_ONLY in kinds:
            notes["readOnly"] = True
        if field_behavior_pb2.INPUT_ONLY in kinds:
            notes["writeOnly"] = True
        if not notes:
            return schema
        if "$ref" in schema:  # a $ref's siblings are ignored in OpenAPI 3.0
            return {"allOf": [schema], **notes}
        return {**schema, **notes}

    def single_schema(self, field: _descriptor.FieldDescriptor) -> dict[str, Any]:
        """One value of the field (an item, for a repeated one)."""
        if field.message_type is not None:
            if field.message_type.full_name in WELL_KNOWN_SCHEMAS:
                return dict(WELL_KNOWN_SCHEMAS[field.message_type.full_name])
            return ref(field.message_type)
        if field.enum_type is not None:
            return ref(field.enum_type)
        kind = field.type
        if kind in _INT32:
            return {"type": "integer", "format": "int32"}
        if kind in _UINT32:
            return {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}
        if kind in _INT64:
            return {"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$"}
        if kind in _UINT64:
            return {"type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$"}
        if kind == FD.TYPE_DOUBLE:
            return {"type": "number", "format": "double"}
        if kind == FD.TYPE_FLOAT:
            return {"type": "number", "format": "float"}
        if kind == FD.TYPE_BOOL:
            return {"type": "boolean"}
        if kind == FD.TYPE_BYTES:
            return {"type": "string", "format": "byte"}
        return {"type": "string"}

    def _describe(self, schema: dict, full_name: str) -> None:
        comment = self.comments.get(full_name)
        if comment:
            schema["description"] = comment

    # -- operations ------------------------------------------------------------------------
    def operation(self, route: Route) -> dict[str, Any]:
        method = route.method
        request, response = method.input_type, method.output_type
        comment = self.comments.get(method.full_name, "")
        operation: dict[str, Any] = {
            "operationId": route.operation_id,
            "tags": [method.containing_service.name],
            "summary": _first_sentence(comment) or method.name,
        }
        if comment:
            operation["description"] = comment
        parameters = []
        for variable in route.template.variables:
            field = _leaf(request, variable)
            parameters.append(
                {
                    "name": path_template.openapi_name(variable),
                    "in": "path",
                    "required": True,
                    "schema": self.field_schema(field, with_notes=False),
                    **({"description": self.comments[field.full_name]} if field.full_name in self.comments else {}),
                }
            )
        if route.body != "*":
            for name, field in _query_fields(request, set(route.template.variables), route.body):
                parameter: dict[str, Any] = {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "schema": self.field_schema(field, with_notes=False),
                }
                if field.is_repeated:
                    parameter.update(style="form", explode=True)
                if field.name == "page_size" and self.max_page_size and parameter["schema"].get("type") == "integer":
                    parameter["schema"].update(minimum=0, maximum=self.max_page_size)  # what the gateway enforces
                if field.full_name in self.comments:
                    parameter["description"] = self.comments[field.full_name]
                parameters.append(parameter)
        if route.server_streaming and sse.RESUME_FIELD in request.fields_by_name:
            parameters.append(
                {
                    "name": sse.LAST_EVENT_ID,
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": f"The `id:` of the last event received (what an EventSource sends when it "
                    f"reconnects): the stream resumes after it. Wins over `{request.fields_by_name[sse.RESUME_FIELD].json_name}`.",
                }
            )
        if parameters:
            operation["parameters"] = parameters
        if route.body:
            operation["requestBody"] = {
                "required": route.body != "*",
                "content": {"application/json": {"schema": self._body_schema(route, request)}},
            }
        self.add_message(response)
        if route.response_body:
            out_schema = self.field_schema(response.fields_by_name[route.response_body], with_notes=False)
        else:
            out_schema = ref(response)
        if route.server_streaming:
            resumable = sse.RESUME_FIELD in response.fields_by_name
            success = {
                "description": f"Server-Sent Events: each `data:` line is a {_name_of(route, response)} as JSON"
                + (
                    f", its `id:` the message's `{response.fields_by_name[sse.RESUME_FIELD].json_name}`"
                    if resumable
                    else ""
                )
                + "; a comment line is sent on quiet streams to keep them open.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        else:
            success = {"description": "OK", "content": {"application/json": {"schema": out_schema}}}
        operation["responses"] = {
            "200": success,
            "default": {
                "description": "An error: a google.rpc.Status as JSON, with details (e.g. field violations).",
                "content": {"application/json": {"schema": ref(status_pb2.Status.DESCRIPTOR)}},
            },
        }
        return operation

    def _body_schema(self, route: Route, request: _descriptor.Descriptor) -> dict[str, Any]:
        self.add_message(request)
        if route.body != "*":
            return self.field_schema(request.fields_by_name[route.body], with_notes=False)
        bound = {v for v in route.template.variables if "." not in v}
        if not bound:
            return ref(request)
        schema = dict(self.schemas[schema_name(request)])
        bound_json = {request.fields_by_name[name].json_name for name in bound}
        schema["properties"] = {k: v for k, v in schema["properties"].items() if k not in bound_json}
        if "required" in schema:
            schema["required"] = [k for k in schema["required"] if k not in bound_json]
            if not schema["required"]:
                del schema["required"]
        return schema


def build_openapi(
    routes: Iterable[Route],
    files: Iterable[_descriptor.FileDescriptor],
    comments: Mapping[str, str],
    title: str = "hooks",
    version: str = "v1",
    max_page_size: int | None = None,
) -> dict[str, Any]:
    builder = OpenApiBuilder(comments, max_page_size)
    for file in files:
        for message in file.message_types_by_name.values():
            builder.add_message(message)
        for enum in file.enum_types_by_name.values():
            builder.add_enum(enum)
    builder.add_message(status_pb2.Status.DESCRIPTOR)
    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, str] = {}
    routes = sorted(routes, key=lambda r: (r.template.template, r.http_method))
    for route in routes:
        path = paths.setdefault(route.template.openapi_path(), {})
        operation = path[route.http_method.lower()] = builder.operation(route)
        links = _links(route, routes)
        if links:
            operation["responses"]["200"]["links"] = links
        service = route.method.containing_service
        tags.setdefault(service.name, builder.comments.get(service.full_name, ""))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "HTTP/JSON API of hooks, transcoded to its gRPC services. Every call under /api/ "
            "needs the caller's identity in `x-rh-identity` (base64 JSON with identity.account_number).",
        },
        "tags": [{"name": name, **({"description": text} if text else {})} for name, text in sorted(tags.items())],
        "security": [{SECURITY_SCHEME: []}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(builder.schemas.items())),
            "securitySchemes": {
                SECURITY_SCHEME: {"type": "apiKey", "in": "header", "name": "x-rh-identity"},
            },
        },
    }


def _links(create: Route, routes: list[Route]) -> dict[str, Any]:
    """OpenAPI links from a create call to the calls on what it created: a POST whose answer has an
    `id` links to every route whose path is its own followed by `/{variable}` (get, update, delete,
    custom verbs, sub-collections), the variable taking that `id`."""
    if create.http_method != "POST" or create.template.variables or create.server_streaming:
        return {}
    output = create.method.output_type
    answer = output.fields_by_name[create.response_body].message_type if create.response_body else output
    if answer is None or "id" not in answer.fields_by_name:
        return {}
    prefix = create.template.template + "/{"
    links = {}
    for route in routes:
        if route is create or not route.template.template.startswith(prefix):
            continue
        variable = route.template.variables[0]
        links[route.operation_id] = {
            "operationId": route.operation_id,
            "parameters": {path_template.openapi_name(variable): "$response.body#/id"},
        }
    return links


def _first_sentence(comment: str) -> str:
    first = " ".join(comment.split("\n\n")[0].split())
    end = first.find(". ")
    return first[: end + 1] if end >= 0 else first


def _name_of(route: Route, response: _descriptor.Descriptor) -> str:
    if route.response_body:
        field = response.fields_by_name[route.response_body]
        return field.message_type.name if field.message_type else field.name
    return response.name


def _leaf(message: _descriptor.Descriptor, dotted: str) -> _descriptor.FieldDescriptor:
    field = None
    current: _descriptor.Descriptor | None = message
    for name in dotted.split("."):
        assert current is not None  # routes._resolve checked the path: only its leaf is not a message
        field = current.fields_by_name[name]
        current = field.message_type
    assert field is not None
    return field


def _query_fields(
    message: _descriptor.Descriptor, bound: set[str], body: str, path: str = "", json_path: str = "", depth: int = 0
) -> Iterator[tuple[str, _descriptor.FieldDescriptor]]:
    """(dotted lowerCamelCase name, leaf field) of every field settable from a query string: those
    neither in the body nor bound by the path."""
    for field in message.fields:
        proto_path = f"{path}{field.name}"
        if (not path and field.name == body) or proto_path in bound:
            continue
        name = f"{json_path}{field.json_name}"
        if field.message_type is None or field.message_type.full_name in SCALAR_LIKE_MESSAGES:
            yield name, field
        elif (
            not field.is_repeated
            and not field.message_type.GetOptions().map_entry
            and field.message_type.full_name not in WELL_KNOWN_SCHEMAS
            and depth < _MAX_QUERY_DEPTH
        ):
            yield from _query_fields(field.message_type, bound, body, f"{proto_path}.", f"{name}.", depth + 1)
