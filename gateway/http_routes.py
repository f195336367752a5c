"""The HTTP routes, built at start-up from the `google.api.http` annotations of service descriptors.

Nothing here knows an endpoint by name: every annotated RPC (and each of its `additional_bindings`)
becomes one `Route`; RPCs without an annotation (internal ones) get none. Which service a route
calls is chosen by the proto package of its service (`hooks.registry.*` -> the registry's target...).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message_factory
from google.protobuf.message import Message

from gateway import path_template
from gateway.path_template import PathTemplate
from services.common.logging import get_logger

log = get_logger(__name__)

#: The packages whose generated modules hold the public services.
DEFAULT_MODULE_PACKAGES = ("hooks.registry.v1", "hooks.sender.v1", "hooks.matcher.v1")

_METHODS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class Route:
    http_method: str  # upper case
    template: PathTemplate
    method: _descriptor.MethodDescriptor = field(compare=False)
    #: "" (no body), "*" (the whole request), or a top-level request field name.
    body: str
    #: "" (the whole response) or a top-level response field name.
    response_body: str
    #: The gRPC target the call goes to.
    target: str
    #: Unique per binding: "Service_Method" with "_1", "_2"... for additional bindings.
    operation_id: str
    request_class: type[Message] = field(compare=False)
    response_class: type[Message] = field(compare=False)

    @property
    def grpc_path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def server_streaming(self) -> bool:
        return self.method.server_streaming


class RouteError(ValueError):
    """An annotation the gateway cannot serve (a bad template, a body naming no field...)."""


def default_file_descriptors(packages: Iterable[str] = DEFAULT_MODULE_PACKAGES) -> list[_descriptor.FileDescriptor]:
    """The file descriptors of every `*_pb2` module under the given packages."""
    files = []
    for package_name in packages:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.endswith("_pb2"):
                files.append(importlib.import_module(f"{package_name}.{info.name}").DESCRIPTOR)
    return files


def target_for(package: str, targets: Mapping[str, str]) -> str | None:
    """The target of the longest package prefix in `targets` that `package` falls under."""
    best = None
    for prefix, target in targets.items():
        if package == prefix or package.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, target)
    return best[1] if best else None


def build_routes(files: Iterable[_descriptor.FileDescriptor], targets: Mapping[str, str]) -> list[Route]:
    """Every binding of every annotated RPC of the files' services, most specific first."""
    routes: list[Route] = []
    for file in files:
        for service in file.services_by_name.values():
            target = target_for(file.package, targets)
            for method in service.methods:
                options = method.GetOptions()
                if not options.HasExtension(annotations_pb2.http):
                    continue
                rule = options.Extensions[annotations_pb2.http]
                if method.client_streaming:
                    log.warning("client-streaming RPC has an http rule; not routed", method=method.full_name)
                    continue
                if target is None:
                    raise RouteError(f"{method.full_name}: no target for package {file.package!r}")
                bindings = [rule, *rule.additional_bindings]
                for index, binding in enumerate(bindings):
                    routes.append(_route(method, binding, target, index))
    _check_duplicates(routes)
    routes.sort(key=lambda r: r.template.specificity, reverse=True)
    return routes


def _route(method: _descriptor.MethodDescriptor, rule: http_pb2.HttpRule, target: str, index: int) -> Route:
    kind = rule.WhichOneof("pattern")
    if kind in _METHODS:
        http_method, path = kind.upper(), getattr(rule, kind)
    elif kind == "custom":
        http_method, path = rule.custom.kind.upper(), rule.custom.path
    else:
        raise RouteError(f"{method.full_name}: http rule without a pattern")
    try:
        template = path_template.parse(path)
    except path_template.TemplateError as exc:
        raise RouteError(f"{method.full_name}: {exc}") from exc
    request, response = method.input_type, method.output_type
    for variable in template.variables:
        _resolve(request, variable, method)
    if rule.body not in ("", "*") and rule.body not in request.fields_by_name:
        raise RouteError(f"{method.full_name}: body {rule.body!r} is not a field of {request.full_name}")
    if rule.response_body and rule.response_body not in response.fields_by_name:
        raise RouteError(
            f"{method.full_name}: response_body {rule.response_body!r} is not a field of {response.full_name}"
        )
    operation_id = f"{method.containing_service.name}_{method.name}" + (f"_{index}" if index else "")
    return Route(
        http_method=http_method,
        template=template,
        method=method,
        body=rule.body,
        response_body=rule.response_body,
        target=target,
        operation_id=operation_id,
        request_class=message_factory.GetMessageClass(request),
        response_class=message_factory.GetMessageClass(response),
    )


def _resolve(
    message: _descriptor.Descriptor, field_path: str, method: _descriptor.MethodDescriptor
) -> _descriptor.FieldDescriptor:
    """The (leaf) field a dotted path names; every step but the last must be a singular message."""
    current = message
    names = field_path.split(".")
    for depth, name in enumerate(names):
        found = current.fields_by_name.get(name)
        if found is None:
            raise RouteError(f"{method.full_name}: {field_path!r} is not a field of {message.full_name}")
        field_descriptor = found
        last = depth == len(names) - 1
        if field_descriptor.is_repeated:
            raise RouteError(f"{method.full_name}: path variable {field_path!r} is repeated")
        if not last:
            if field_descriptor.message_type is None:
                raise RouteError(f"{method.full_name}: {field_path!r} goes through a scalar")
            current = field_descriptor.message_type
        elif field_descriptor.message_type is not None:
            raise RouteError(f"{method.full_name}: path variable {field_path!r} is a message")
    return field_descriptor


def _check_duplicates(routes: list[Route]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for route in routes:
        key = (route.http_method, route.template.regex.pattern)
        if key in seen:
            raise RouteError(
                f"{route.method.full_name} and {seen[key]} both bind {route.http_method} {route.template.template}"
            )
        seen[key] = route.method.full_name


@dataclass
class Match:
    route: Route
    variables: dict[str, str]


class Router:
    """Finds the route of a request: a path match with the right method, or says which methods exist."""

    def __init__(self, routes: list[Route]):
        self.routes = routes

    def find(self, http_method: str, raw_path: str) -> Match | list[str]:
        """The match; or, when no route has this method, the methods the path allows (empty: no route).

        A path that a route with a custom verb matches (`/deliveries/d1:retry`) belongs to the verb's
        routes only: a verbless template whose last variable could swallow the `:retry`
        (`/deliveries/{id}`) neither serves it nor counts among the methods it allows, so `Allow`
        names what the OpenAPI document lists under that path. Routes with a verb sort first."""
        allowed: list[str] = []
        verb_matched = False
        for route in self.routes:
            if verb_matched and not route.template.verb:
                break
            variables = route.template.match(raw_path)
            if variables is None:
                continue
            verb_matched = verb_matched or bool(route.template.verb)
            if route.http_method == http_method:
                return Match(route, variables)
            if route.http_method not in allowed:
                allowed.append(route.http_method)
        return allowed
