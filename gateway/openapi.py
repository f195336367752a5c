"""The OpenAPI 3 document of the HTTP API, generated from the same routes and the protos' comments.

Paths and parameters come from each route's template and http rule, exactly as the transcoder
reads them (path variables, query parameters for the remaining fields, the body mapping,
`response_body`); schemas are the protobuf JSON mapping of every message (lowerCamelCase names,
enums as names, 64-bit integers and well-known types as strings); descriptions are the comments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor as _descriptor
from google.rpc import status_pb2

from gateway import path_template, sse
from gateway.http_routes import Route
from gateway.transcoder import SCALAR_LIKE_MESSAGES
from services.common.bounds import FIELD_BOUNDS, Bounds

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


#: How a message is described: as a request carries it (the bounds of services.common.bounds, no
#: properties beyond its fields), or as a response does (its shape only: what the services return).
REQUEST, RESPONSE = "request", "response"
#: The suffix of a request's variant of a message whose schema differs from the response's.
INPUT_SUFFIX = "Input"
#: The suffix of the body of an update (AIP-134): the writable fields, none required, at least one set.
UPDATE_SUFFIX = "Update"
UPDATE_MASK = "update_mask"


def schema_name(descriptor: _descriptor.Descriptor | _descriptor.EnumDescriptor, suffix: str = "") -> str:
    return descriptor.full_name + suffix


def ref_to(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def ref(descriptor: _descriptor.Descriptor | _descriptor.EnumDescriptor) -> dict[str, str]:
    return ref_to(schema_name(descriptor))


def behaviors(field: _descriptor.FieldDescriptor) -> set[int]:
    return set(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


class OpenApiBuilder:
    def __init__(
        self,
        comments: Mapping[str, str],
        max_page_size: int | None = None,
        field_bounds: Mapping[str, Bounds] | None = None,
    ):
        self.comments = comments
        self.max_page_size = max_page_size
        self.field_bounds = FIELD_BOUNDS if field_bounds is None else field_bounds
        self.schemas: dict[str, dict[str, Any]] = {}
        self._names: dict[tuple[str, str], str] = {}

    # -- schemas ---------------------------------------------------------------------------
    def message_ref(self, message: _descriptor.Descriptor, mode: str = RESPONSE) -> dict[str, Any]:
        """A $ref to the message's schema as `mode` describes it, added to the components (with
        every message and enum it refers to): a request's variant is a component of its own,
        `<name>Input`, only where it differs from the response's."""
        if message.full_name in WELL_KNOWN_SCHEMAS:
            return dict(WELL_KNOWN_SCHEMAS[message.full_name])
        return ref_to(self._message_name(message, mode))

    def _message_name(self, message: _descriptor.Descriptor, mode: str) -> str:
        key = (message.full_name, mode)
        if key in self._names:
            return self._names[key]
        if mode == REQUEST:
            response_name = self._message_name(message, RESPONSE)
            self._names[key] = response_name  # a recursive message refers to itself while it is built
            schema = self._message_schema(message, REQUEST)
            if schema != self.schemas[response_name]:
                name = schema_name(message, INPUT_SUFFIX)
                self._names[key] = name
                self.schemas[name] = schema
            return self._names[key]
        name = schema_name(message)
        self._names[key] = name
        self.schemas[name] = {}  # reserved while its fields are described
        self.schemas[name] = self._message_schema(message, RESPONSE)
        return name

    def _message_schema(self, message: _descriptor.Descriptor, mode: str) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "properties": {}}
        self._describe(schema, message.full_name)
        required = []
        for field in message.fields:
            schema["properties"][field.json_name] = self.field_schema(field, mode=mode)
            if mode == REQUEST and field_behavior_pb2.REQUIRED in behaviors(field):
                required.append(field.json_name)
        if required:
            schema["required"] = required
        # json_format refuses a field the message does not have; the gateway renders none.
        schema["additionalProperties"] = False
        return schema

    def update_body(self, message: _descriptor.Descriptor) -> dict[str, Any]:
        """The body of an update (AIP-134: without `updateMask`, the fields present in it change): the
        request's variant of the message without its required list and its IMMUTABLE fields (naming
        one in an update is refused), and at least one property."""
        name = schema_name(message, UPDATE_SUFFIX)
        if name not in self.schemas:
            schema = self._message_schema(message, REQUEST)
            schema.pop("required", None)
            for field in message.fields:
                if field_behavior_pb2.IMMUTABLE in behaviors(field):
                    del schema["properties"][field.json_name]
            schema["minProperties"] = 1
            self.schemas[name] = schema
        return ref_to(name)

    def enum_schema(self, enum: _descriptor.EnumDescriptor, specified: bool = False) -> dict[str, Any]:
        """The enum's names (without its zero value where `specified`: a field that refuses it),
        described by the comments of the enum and of each value."""
        if enum.full_name == "google.protobuf.NullValue":
            return {"nullable": True, "enum": [None]}
        values = [v for v in enum.values if not (specified and v.number == 0)]
        schema: dict[str, Any] = {"type": "string", "enum": [v.name for v in values]}
        lines = [self.comments.get(enum.full_name, "")]
        for value in values:
            comment = self.comments.get(f"{enum.full_name}.{value.name}")
            if comment:
                lines.append(f"- `{value.name}`: {' '.join(comment.split())}")
        description = "\n".join(line for line in lines if line)
        if description:
            schema["description"] = description
        return schema

    def enum_ref(self, enum: _descriptor.EnumDescriptor) -> dict[str, Any]:
        name = schema_name(enum)
        if name not in self.schemas:
            self.schemas[name] = self.enum_schema(enum)
        return ref_to(name)

    def field_schema(
        self, field: _descriptor.FieldDescriptor, with_notes: bool = True, mode: str = RESPONSE
    ) -> dict[str, Any]:
        """The field's value (a list or a map of them, for a repeated field); in REQUEST mode with the
        field's bounds; with its comment and read/write-only behaviour as `with_notes`."""
        bounds = self.field_bounds.get(field.full_name) if mode == REQUEST else None
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self.single_schema(value, mode, bounds),
            }
            if bounds is not None and bounds.max_items is not None:
                schema["maxProperties"] = bounds.max_items
        elif field.is_repeated:
            schema = {"type": "array", "items": self.single_schema(field, mode, bounds)}
            if bounds is not None and bounds.min_items is not None:
                schema["minItems"] = bounds.min_items
            if bounds is not None and bounds.max_items is not None:
                schema["maxItems"] = bounds.max_items
        else:
            schema = self.single_schema(field, mode, bounds)
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

    def single_schema(
        self, field: _descriptor.FieldDescriptor, mode: str = RESPONSE, bounds: Bounds | None = None
    ) -> dict[str, Any]:
        """One value of the field (an item, for a repeated one), within `bounds`."""
        if field.message_type is not None:
            return self.message_ref(field.message_type, mode)
        if field.enum_type is not None:
            if bounds is not None and bounds.specified:
                return self.enum_schema(field.enum_type, specified=True)
            return self.enum_ref(field.enum_type)
        schema = _scalar_schema(field)
        if bounds is None:
            return schema
        if schema.get("type") == "string":
            for key, value in (
                ("minLength", bounds.min_length),
                ("maxLength", bounds.max_length),
                ("pattern", bounds.pattern),
            ):
                if value is not None:
                    schema[key] = value
        elif schema.get("type") == "integer":
            if bounds.minimum is not None:
                schema["minimum"] = bounds.minimum
            if bounds.maximum is not None:
                schema["maximum"] = bounds.maximum
        return schema

    def _describe(self, schema: dict, full_name: str) -> None:
        comment = self.comments.get(full_name)
        if comment:
            schema["description"] = comment


def _scalar_schema(field: _descriptor.FieldDescriptor) -> dict[str, Any]:
    """A scalar field's protobuf JSON form; integers within what their type holds (json_format
    refuses more)."""
    kind = field.type
    if kind in _INT32:
        return {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
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


#: The error answers an operation may declare: each is a google.rpc.Status as JSON (gateway/errors.py:
#: `code`, `message`, and `details` when there are any), with the HTTP status of its code.
ERROR_RESPONSES: dict[str, tuple[str, str]] = {
    "400": (
        "BadRequest",
        "INVALID_ARGUMENT (or FAILED_PRECONDITION, OUT_OF_RANGE): the request is malformed or out of bounds; "
        "its `details` hold a google.rpc.BadRequest naming each field that is wrong.",
    ),
    "401": ("Unauthenticated", "UNAUTHENTICATED: the call has no readable `x-rh-identity`."),
    "404": ("NotFound", "NOT_FOUND: the caller's account has nothing by that name or id."),
    "409": ("AlreadyExists", "ALREADY_EXISTS: another resource of the account has that name."),
    "413": ("PayloadTooLarge", "RESOURCE_EXHAUSTED: the body is larger than the gateway accepts."),
    "429": (
        "ResourceExhausted",
        "RESOURCE_EXHAUSTED: the account is at one of its quotas; its `details` hold a google.rpc.QuotaFailure.",
    ),
    "5XX": (
        "ServerError",
        "INTERNAL, UNAVAILABLE or DEADLINE_EXCEEDED: a service failed or did not answer; try again.",
    ),
}
#: What a few calls answer besides what every call may (400, 401, 5XX), a call naming a resource in
#: its path (404) and a call with a body (413): the names they keep unique, the quotas they count.
METHOD_ERRORS: dict[str, tuple[str, ...]] = {
    "hooks.registry.v1.EndpointService.CreateEndpoint": ("409", "429"),
    "hooks.registry.v1.EndpointService.UpdateEndpoint": ("409",),
    "hooks.registry.v1.FilterService.CreateFilter": ("429",),
    "hooks.registry.v1.FilterService.UpdateFilter": ("429",),
    "hooks.sender.v1.DeliveryService.WatchDeliveries": ("429",),
}


def _error_statuses(route: Route) -> list[str]:
    method = route.method
    statuses = {"400", "401", "5XX", *METHOD_ERRORS.get(method.full_name, ())}
    if route.template.variables and not method.name.startswith("List"):
        statuses.add("404")
    if route.body:
        statuses.add("413")
    return sorted(statuses)


#: A map key in a mask path (`headers.X-Token`): an HTTP token, what the maps' keys (header names) are.
_MASK_KEY = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"


def _mask_pattern(resource: _descriptor.Descriptor) -> str:
    """The paths an update's `updateMask` may name, comma-separated: the resource's fields that are
    neither OUTPUT_ONLY nor IMMUTABLE, by either name, and a map field's `<field>.<key>`."""
    names = []
    for field in resource.fields:
        if behaviors(field) & {field_behavior_pb2.OUTPUT_ONLY, field_behavior_pb2.IMMUTABLE}:
            continue
        spelled = "|".join(dict.fromkeys([field.json_name, field.name]))
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        names.append(f"(?:{spelled})(?:\\.{_MASK_KEY})?" if is_map else f"(?:{spelled})")
    path = "\\s*(?:" + "|".join(names) + ")\\s*"
    return f"^{path}(?:,{path})*$"


def _has_required_field(request: _descriptor.Descriptor, route: Route) -> bool:
    """Whether a `body: "*"` request has a REQUIRED field the path does not set (then a body is too)."""
    bound = set(route.template.variables)
    return any(field_behavior_pb2.REQUIRED in behaviors(field) and field.name not in bound for field in request.fields)


def _is_update(route: Route) -> bool:
    """An AIP-134 update: a PATCH of one resource field beside an `update_mask`."""
    request = route.method.input_type
    return route.http_method == "PATCH" and route.body not in ("", "*") and UPDATE_MASK in request.fields_by_name


class OperationBuilder(OpenApiBuilder):
    # -- operations ------------------------------------------------------------------------
    def operation(self, route: Route, parameter_names: Mapping[str, str]) -> dict[str, Any]:
        """The route's operation; `parameter_names` names each path variable's parameter."""
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
            schema = self.field_schema(field, with_notes=False, mode=REQUEST)
            schema.setdefault("minLength", 1)  # a path segment is never empty
            parameters.append(
                {
                    "name": parameter_names[variable],
                    "in": "path",
                    "required": True,
                    "schema": schema,
                    **({"description": self.comments[field.full_name]} if field.full_name in self.comments else {}),
                }
            )
        if route.body != "*":
            for name, field in _query_fields(request, set(route.template.variables), route.body):
                parameter: dict[str, Any] = {
                    "name": name,
                    "in": "query",
                    # A REQUIRED field of the request itself (a nested one is only within its message).
                    "required": "." not in name and field_behavior_pb2.REQUIRED in behaviors(field),
                    "schema": self.field_schema(field, with_notes=False, mode=REQUEST),
                }
                if field.is_repeated:
                    parameter.update(style="form", explode=True)
                resource = request.fields_by_name[route.body].message_type if _is_update(route) else None
                if field.name == UPDATE_MASK and resource is not None:
                    parameter["schema"]["pattern"] = _mask_pattern(resource)
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
            body_schema = self._body_schema(route, request)
            operation["requestBody"] = {
                "required": route.body != "*" or _has_required_field(request, route),
                "content": {"application/json": {"schema": body_schema}},
            }
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
            if route.response_body:
                out_schema = self.field_schema(response.fields_by_name[route.response_body], with_notes=False)
            else:
                out_schema = self.message_ref(response)
            success = {"description": "OK", "content": {"application/json": {"schema": out_schema}}}
        operation["responses"] = {"200": success}
        for status in _error_statuses(route):
            operation["responses"][status] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"}
        return operation

    def _body_schema(self, route: Route, request: _descriptor.Descriptor) -> dict[str, Any]:
        if route.body != "*":
            field = request.fields_by_name[route.body]
            if _is_update(route) and field.message_type is not None:
                return self.update_body(field.message_type)
            return self.field_schema(field, with_notes=False, mode=REQUEST)
        bound = {v for v in route.template.variables if "." not in v}
        whole = self.message_ref(request, REQUEST)
        if not bound:
            return whole
        schema = dict(self.schemas[whole["$ref"].rpartition("/")[2]])
        bound_json = {request.fields_by_name[name].json_name for name in bound}
        schema["properties"] = {k: v for k, v in schema["properties"].items() if k not in bound_json}
        if "required" in schema:
            schema["required"] = [k for k in schema["required"] if k not in bound_json]
            if not schema["required"]:
                del schema["required"]
        return schema

    def error_responses(self) -> dict[str, Any]:
        status = self.message_ref(status_pb2.Status.DESCRIPTOR)
        return {
            name: {"description": description, "content": {"application/json": {"schema": status}}}
            for name, description in ERROR_RESPONSES.values()
        }


def parameter_names(routes: Iterable[Route]) -> dict[str, dict[str, str]]:
    """Each route's OpenAPI name of each path variable (by operation id), one per path: the routes
    whose templates differ only in their variables' names (GET /endpoints/{id} and PATCH
    /endpoints/{endpoint.id}, whose variable names the resource inside the request) are one OpenAPI
    path, named by the plainest variable (fewest dots, then shortest: `id`). The gateway matches
    the template itself, so this is only how the document names them."""
    groups: dict[str, list[Route]] = {}
    for route in routes:
        groups.setdefault(_path_shape(route), []).append(route)
    names: dict[str, dict[str, str]] = {}
    for group in groups.values():
        count = len(group[0].template.variables)
        chosen = [
            min((r.template.variables[i] for r in group), key=lambda v: (v.count("."), len(v), v)) for i in range(count)
        ]
        for route in group:
            names[route.operation_id] = {
                variable: path_template.openapi_name(chosen[i]) for i, variable in enumerate(route.template.variables)
            }
    return names


def _path_shape(route: Route) -> str:
    return re.sub(r"\{[^}]*\}", "{}", route.template.openapi_path())


def _openapi_path(route: Route, names: Mapping[str, str]) -> str:
    chosen = iter(names[variable] for variable in route.template.variables)
    return re.sub(r"\{[^}]*\}", lambda _: "{" + next(chosen) + "}", route.template.openapi_path())


def build_openapi(
    routes: Iterable[Route],
    comments: Mapping[str, str],
    title: str = "hooks",
    version: str = "v1",
    max_page_size: int | None = None,
    field_bounds: Mapping[str, Bounds] | None = None,
) -> dict[str, Any]:
    """The document of the routes: every operation, and the schemas of the messages they carry (no
    other: an unused one would only say what no call takes or returns); `field_bounds` default to
    services.common.bounds."""
    builder = OperationBuilder(comments, max_page_size, field_bounds)
    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, str] = {}
    routes = sorted(routes, key=lambda r: (r.template.template, r.http_method))
    names = parameter_names(routes)
    for route in routes:
        path = paths.setdefault(_openapi_path(route, names[route.operation_id]), {})
        operation = path[route.http_method.lower()] = builder.operation(route, names[route.operation_id])
        links = _links(route, routes, names)
        if links:
            operation["responses"]["200"]["links"] = links
        service = route.method.containing_service
        tags.setdefault(service.name, builder.comments.get(service.full_name, ""))
    responses = builder.error_responses()
    components = {"schemas": dict(sorted(builder.schemas.items())), "responses": responses}
    _keep_used(paths, components)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "HTTP/JSON API of hooks, transcoded to its gRPC services. Every call under /api/ "
            "needs the caller's identity in `x-rh-identity` (base64 JSON with identity.account_number).",
        },
        # Relative to where the document is served: the gateway that serves it serves the API.
        "servers": [{"url": "/", "description": "The gateway serving this document."}],
        "tags": [{"name": name, **({"description": text} if text else {})} for name, text in sorted(tags.items())],
        "security": [{SECURITY_SCHEME: []}],
        "paths": paths,
        "components": {
            **components,
            "securitySchemes": {
                SECURITY_SCHEME: {"type": "apiKey", "in": "header", "name": "x-rh-identity"},
            },
        },
    }


def _keep_used(paths: dict[str, Any], components: dict[str, dict[str, Any]]) -> None:
    """Drops the components no operation reaches (a response variant built only to compare a request's
    with, an error no call answers), and gives a request's variant the message's own name where the
    message is never a response: `hooks.matcher.v1.PublishMessageRequest`, not `...RequestInput`."""
    used: set[tuple[str, str]] = set()
    pending: list[Any] = [paths]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            target = node.get("$ref")
            if isinstance(target, str) and target.startswith("#/components/"):
                _, _, kind, name = target.split("/", 3)
                if (kind, name) not in used:
                    used.add((kind, name))
                    pending.append(components[kind][name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    for kind, items in components.items():
        for name in list(items):
            if (kind, name) not in used:
                del items[name]
    schemas = components["schemas"]
    renames = {
        f"#/components/schemas/{name}": f"#/components/schemas/{name.removesuffix(INPUT_SUFFIX)}"
        for name in schemas
        if name.endswith(INPUT_SUFFIX) and name.removesuffix(INPUT_SUFFIX) not in schemas
    }
    if not renames:
        return
    pending = [paths, components]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("$ref") in renames:
                node["$ref"] = renames[node["$ref"]]
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    for old in renames:
        name = old.rpartition("/")[2]
        schemas[name.removesuffix(INPUT_SUFFIX)] = schemas.pop(name)
    components["schemas"] = dict(sorted(schemas.items()))


def _links(create: Route, routes: list[Route], names: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
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
            "parameters": {names[route.operation_id][variable]: "$response.body#/id"},
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
