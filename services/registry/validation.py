"""Checks of what callers send, collected as field violations named the way the request names them
(`application.event_types[1].id`, `endpoint.headers["Host"]`, `filter.endpoint_ids[0]`), so a person
sees everything wrong at once. References to stored things are checked by the repositories."""

from __future__ import annotations

import re
import ssl
from urllib.parse import urlsplit

from hooks.registry.v1 import applications_pb2, endpoints_pb2

from services.common.errors import FieldViolations
from services.registry.signing_secrets import normalize_secret

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
NAME_RULE = "must be 1 to 100 characters of letters, digits, '_', '.' or '-'"
MAX_TITLE = 200
MAX_EVENT_TYPES = 500
MAX_LEVELS = 100

MAX_ENDPOINT_NAME = 200
MAX_DESCRIPTION = 2000
MAX_TARGET = 2000
MAX_HEADERS = 20
MAX_HEADER_NAME = 100
MAX_HEADER_VALUE = 2000
MAX_CA_CERTIFICATE = 64 * 1024
MAX_ID = 100
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: Headers hooks sets itself, or that belong to the connection rather than the message.
RESERVED_HEADERS = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
        "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length", "content-type",
        "content-encoding", "expect", "webhook-id", "webhook-timestamp", "webhook-signature",
        "traceparent", "tracestate",
    }
)
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")

ENDPOINT_TYPES = {
    endpoints_pb2.ENDPOINT_TYPE_WEBHOOK: "webhook",
    endpoints_pb2.ENDPOINT_TYPE_SLACK: "slack",
    endpoints_pb2.ENDPOINT_TYPE_TEAMS: "teams",
    endpoints_pb2.ENDPOINT_TYPE_GOOGLE_CHAT: "google_chat",
    endpoints_pb2.ENDPOINT_TYPE_EMAIL: "email",
}
ENDPOINT_TYPE_NUMBERS = {name: number for number, name in ENDPOINT_TYPES.items()}

MAX_FILTER_NAME = 200
MAX_FILTER_ENTRIES = 100


def check_name(violations: FieldViolations, field: str, value: str) -> None:
    if not value:
        violations.add(field, "is required")
    elif not NAME_PATTERN.match(value):
        violations.add(field, NAME_RULE)


def check_title(violations: FieldViolations, field: str, value: str) -> None:
    if not value.strip():
        violations.add(field, "is required")
    elif len(value) > MAX_TITLE:
        violations.add(field, f"must be at most {MAX_TITLE} characters")


def check_application(application: applications_pb2.Application) -> FieldViolations:
    """The registration document: names, titles, no duplicate ids, bounded sizes."""
    violations = FieldViolations()
    check_name(violations, "application.name", application.name)
    check_title(violations, "application.title", application.title)
    if len(application.event_types) > MAX_EVENT_TYPES:
        violations.add("application.event_types", f"must have at most {MAX_EVENT_TYPES} entries")
        return violations
    seen_types: dict[str, int] = {}
    for i, event_type in enumerate(application.event_types):
        where = f"application.event_types[{i}]"
        check_name(violations, f"{where}.id", event_type.id)
        if event_type.id and event_type.id in seen_types:
            violations.add(f"{where}.id", f"duplicates application.event_types[{seen_types[event_type.id]}].id {event_type.id!r}")
        seen_types.setdefault(event_type.id, i)
        check_title(violations, f"{where}.title", event_type.title)
        if len(event_type.levels) > MAX_LEVELS:
            violations.add(f"{where}.levels", f"must have at most {MAX_LEVELS} entries")
            continue
        seen_levels: dict[str, int] = {}
        for j, level in enumerate(event_type.levels):
            check_name(violations, f"{where}.levels[{j}].id", level.id)
            if level.id and level.id in seen_levels:
                violations.add(f"{where}.levels[{j}].id", f"duplicates {where}.levels[{seen_levels[level.id]}].id {level.id!r}")
            seen_levels.setdefault(level.id, j)
            check_title(violations, f"{where}.levels[{j}].title", level.title)
    return violations


def check_id(violations: FieldViolations, field: str, value: str) -> None:
    if not value:
        violations.add(field, "is required")
    elif len(value) > MAX_ID:
        violations.add(field, f"must be at most {MAX_ID} characters")


def check_target(violations: FieldViolations, field: str, endpoint_type: str, target: str) -> None:
    if not target:
        violations.add(field, "is required")
        return
    if len(target) > MAX_TARGET:
        violations.add(field, f"must be at most {MAX_TARGET} characters")
        return
    if endpoint_type == "email":
        if not EMAIL.match(target) or len(target) > 254:
            violations.add(field, "must be an e-mail address such as ops@example.com")
        return
    if any(c.isspace() for c in target):
        violations.add(field, "must not contain spaces")
        return
    try:
        parts = urlsplit(target)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        violations.add(field, "must be an http:// or https:// URL")
        return
    if parts.scheme not in ("http", "https"):
        violations.add(field, "must be an http:// or https:// URL")
    elif not host:
        violations.add(field, "must be a URL with a host, such as https://hooks.example.com/notify")


def check_headers(violations: FieldViolations, field: str, headers: dict[str, str]) -> None:
    if len(headers) > MAX_HEADERS:
        violations.add(field, f"must have at most {MAX_HEADERS} entries")
        return
    seen: set[str] = set()
    for name, value in headers.items():
        where = f"{field}[{name[:MAX_HEADER_NAME]!r}]"
        lowered = name.lower()
        if not HEADER_NAME.match(name) or len(name) > MAX_HEADER_NAME:
            violations.add(where, f"is not a valid header name (1 to {MAX_HEADER_NAME} token characters)")
        elif lowered in RESERVED_HEADERS:
            violations.add(where, "is set by hooks or by the connection and cannot be overridden")
        elif lowered in seen:
            violations.add(where, "is given twice (header names are case-insensitive)")
        seen.add(lowered)
        if len(value) > MAX_HEADER_VALUE:
            violations.add(where, f"value must be at most {MAX_HEADER_VALUE} characters")
        elif any(c in value for c in "\r\n\0"):
            violations.add(where, "value must not contain line breaks or NUL")


def check_ca_certificate(violations: FieldViolations, field: str, pem: str) -> None:
    if not pem:
        return
    if len(pem) > MAX_CA_CERTIFICATE:
        violations.add(field, f"must be at most {MAX_CA_CERTIFICATE} bytes")
        return
    if "-----BEGIN CERTIFICATE-----" not in pem:
        violations.add(field, "must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
        return
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        violations.add(field, f"is not a readable PEM certificate: {exc}")


def check_secret(violations: FieldViolations, field: str, secret: str) -> str | None:
    """The normalised secret, or None (with a violation) when it is malformed."""
    try:
        return normalize_secret(secret)
    except ValueError as exc:
        violations.add(field, str(exc))
        return None


def check_endpoint_fields(
    endpoint: endpoints_pb2.Endpoint, endpoint_type: str, fields: set[str], violations: FieldViolations
) -> None:
    """Checks the named writable fields of an endpoint message."""
    if "name" in fields:
        if not endpoint.name.strip():
            violations.add("endpoint.name", "is required")
        elif len(endpoint.name) > MAX_ENDPOINT_NAME:
            violations.add("endpoint.name", f"must be at most {MAX_ENDPOINT_NAME} characters")
    if "description" in fields and len(endpoint.description) > MAX_DESCRIPTION:
        violations.add("endpoint.description", f"must be at most {MAX_DESCRIPTION} characters")
    if "target" in fields:
        check_target(violations, "endpoint.target", endpoint_type, endpoint.target)
    if "headers" in fields:
        check_headers(violations, "endpoint.headers", dict(endpoint.headers))
    if "ca_certificate" in fields:
        check_ca_certificate(violations, "endpoint.ca_certificate", endpoint.ca_certificate)
    if "secret" in fields and endpoint.secret:
        check_secret(violations, "endpoint.secret", endpoint.secret)
