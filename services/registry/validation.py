"""Checks of what callers send to the registry, collected as field violations named the way the request
names them (`application.event_types[1].id`, `endpoint.headers['Host']`, `filter.endpoint_ids[0]`), so a
person sees every field that is wrong at once (for each, the first thing wrong with it). An application
definition's rules are `hooks_client.registration`'s; the header names an endpoint may not set are
`services.common.headers`'; references to stored things (a filter's endpoint ids) are checked where
they are read (services/registry/filters.py).

What is accepted here must never crash a later stage: patterns match the whole value (`fullmatch`;
`$` would let a trailing newline through); stored text holds no control characters
(`services.common.limits.text_problem`: NUL, which PostgreSQL's text cannot hold, C0, DEL, C1), except
tabs and line breaks in free text for people and in a PEM certificate, and tabs in header values;
and a target holds no credentials, since a target is shown back and a header value never is."""

from __future__ import annotations

import re
import ssl
from urllib.parse import urlsplit

from hooks.registry.v1 import applications_pb2, endpoints_pb2
from hooks_client import registration
from hooks_client.registration import (  # noqa: F401 - the registry's names for the shared rules
    LINE_BREAKS_AS_SPACES,
    MAX_EVENT_TYPES,
    MAX_LEVELS,
    MAX_TITLE,
    NAME_PATTERN,
    NAME_RULE,
    check_name,
    check_text,
    check_title,
)
from services.common.bounds import (  # noqa: F401 - the limits of the fields, in the table the OpenAPI document declares
    EMAIL_ADDRESS,
    MAX_CA_CERTIFICATE,
    MAX_DESCRIPTION,
    MAX_ENDPOINT_NAME,
    MAX_FILTER_ENTRIES,
    MAX_FILTER_NAME,
    MAX_HEADER_NAME,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MAX_ID,
    MAX_RATE_LIMIT,
    MAX_TARGET,
)
from services.common.email_domains import RecipientDomains
from services.common.errors import FieldViolations
from services.common.headers import RESERVED_HEADERS
from services.common.json_schemas import SchemaError, compile_schema, schema_error_text
from services.common.limits import text_problem
from services.common.network_policy import NetworkPolicy
from services.registry.signing_secrets import normalize_secret

# The rules of an application definition (names, titles, event types, levels, schemas) and of stored
# text are the producers' package's, `hooks_client.registration`: `hooks apps register` and
# `hooks_client.register` check a document with them before sending it (one implementation).
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
EMAIL = re.compile(EMAIL_ADDRESS)

ENDPOINT_TYPES = {
    endpoints_pb2.ENDPOINT_TYPE_WEBHOOK: "webhook",
    endpoints_pb2.ENDPOINT_TYPE_SLACK: "slack",
    endpoints_pb2.ENDPOINT_TYPE_TEAMS: "teams",
    endpoints_pb2.ENDPOINT_TYPE_GOOGLE_CHAT: "google_chat",
    endpoints_pb2.ENDPOINT_TYPE_EMAIL: "email",
}
ENDPOINT_TYPE_NUMBERS = {name: number for number, name in ENDPOINT_TYPES.items()}


def check_application(application: applications_pb2.Application) -> FieldViolations:
    """The registration document: names, titles, no duplicate ids, bounded sizes, valid JSON Schemas
    (`hooks_client.registration.check_application`), each of which the matcher can apply
    (services.common.json_schemas)."""
    violations = FieldViolations(registration.check_application(application))
    for index, event_type in enumerate(application.event_types):
        field = f"application.event_types[{index}].schema"
        schema = registration.schema_of(event_type)
        if schema is None or any(name == field for name, _ in violations.violations):
            continue
        try:
            compile_schema(schema)
        except SchemaError as exc:
            violations.add(field, f"cannot be applied to messages: {schema_error_text(exc)[:500]}")
    return violations


def check_id(violations: FieldViolations, field: str, value: str) -> None:
    check_text(violations, field, value, limit=MAX_ID, required=True)


def is_possible_id(value: str) -> bool:
    """Whether `value` could be the id of a stored endpoint or filter (worth looking up)."""
    return bool(value) and len(value) <= MAX_ID and text_problem(value) is None


def check_target(
    violations: FieldViolations, field: str, endpoint_type: str, target: str, email_domains: RecipientDomains
) -> None:
    """An http(s) URL without credentials, or for e-mail an address at a domain the operator allows."""
    if not target:
        violations.add(field, "is required")
        return
    if len(target) > MAX_TARGET:
        violations.add(field, f"must be at most {MAX_TARGET} characters")
        return
    if endpoint_type == "email":
        if not EMAIL.fullmatch(target) or len(target) > 254:
            violations.add(field, "must be an e-mail address such as ops@example.com")
        elif not email_domains.allows(target):
            violations.add(field, email_domains.refusal(target))
        return
    if any(c.isspace() for c in target):
        violations.add(field, "must not contain spaces")
        return
    bad = text_problem(target)
    if bad:
        violations.add(field, f"must not hold control characters ({bad})")
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
    elif "@" in parts.netloc:
        # A target is shown to everyone who can read the endpoint; a header value never is.
        violations.add(
            field,
            "must not hold credentials (user:password@ before the host); send them in a header instead, "
            "such as Authorization, whose value is never shown back",
        )


async def target_address_refusal(target: str, networks: NetworkPolicy) -> str | None:
    """Why the host of `target`, an http(s) URL that `check_target` accepts, may not be reached
    (`NetworkPolicy.target_refusal`: a literal address or a name resolving only to addresses the
    operator refuses); None when it may, or when `target` is no such URL (`check_target` says what is
    wrong with it), so that nothing is looked up for a value refused anyway."""
    shape = FieldViolations()
    check_target(shape, "target", "webhook", target, RecipientDomains())
    if shape:
        return None
    host = urlsplit(target).hostname
    return await networks.target_refusal(host) if host else None


def add_target_refusal(violations: FieldViolations, endpoint_type: str, refusal: str | None) -> None:
    """`refusal` (from target_address_refusal) as the violation of `endpoint.target`, for an endpoint
    that posts to its target (not e-mail) and whose target is otherwise fine."""
    field = "endpoint.target"
    if refusal and endpoint_type != "email" and all(name != field for name, _ in violations.violations):
        violations.add(field, refusal)


def check_headers(violations: FieldViolations, field: str, headers: dict[str, str]) -> None:
    if len(headers) > MAX_HEADERS:
        violations.add(field, f"must have at most {MAX_HEADERS} entries")
        return
    seen: set[str] = set()
    for name, value in headers.items():
        where = f"{field}[{name[:MAX_HEADER_NAME]!r}]"
        lowered = name.lower()
        if not HEADER_NAME.fullmatch(name) or len(name) > MAX_HEADER_NAME:
            violations.add(where, f"is not a valid header name (1 to {MAX_HEADER_NAME} token characters)")
        elif lowered in RESERVED_HEADERS:
            violations.add(where, "is set by hooks or by the connection and cannot be overridden")
        elif lowered in seen:
            violations.add(where, "is given twice (header names are case-insensitive)")
        seen.add(lowered)
        if len(value) > MAX_HEADER_VALUE:
            violations.add(where, f"value must be at most {MAX_HEADER_VALUE} characters")
            continue
        bad = text_problem(value.replace("\t", " "))  # a tab is the one control character HTTP allows in a value
        if bad:
            violations.add(where, f"value must not hold control characters other than tab ({bad})")


def check_ca_certificate(violations: FieldViolations, field: str, pem: str) -> None:
    if not pem:
        return
    if len(pem) > MAX_CA_CERTIFICATE:
        violations.add(field, f"must be at most {MAX_CA_CERTIFICATE} bytes")
        return
    bad = text_problem(pem.translate(LINE_BREAKS_AS_SPACES))
    if bad:
        violations.add(field, f"must not hold control characters other than tabs and line breaks ({bad})")
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
    endpoint: endpoints_pb2.Endpoint,
    endpoint_type: str,
    fields: set[str],
    violations: FieldViolations,
    *,
    email_domains: RecipientDomains,
) -> None:
    """Checks the named writable fields of an endpoint message (an e-mail target against the
    operator's allowed recipient domains)."""
    if "name" in fields:
        check_text(violations, "endpoint.name", endpoint.name, limit=MAX_ENDPOINT_NAME, required=True)
    if "description" in fields:
        check_text(violations, "endpoint.description", endpoint.description, limit=MAX_DESCRIPTION, line_breaks=True)
    if "target" in fields:
        check_target(violations, "endpoint.target", endpoint_type, endpoint.target, email_domains)
    if "headers" in fields:
        check_headers(violations, "endpoint.headers", dict(endpoint.headers))
    if "ca_certificate" in fields:
        check_ca_certificate(violations, "endpoint.ca_certificate", endpoint.ca_certificate)
    if "secret" in fields and endpoint.secret:
        check_secret(violations, "endpoint.secret", endpoint.secret)
    if "rate_limit" in fields:
        check_rate_limit(violations, "endpoint.rate_limit", endpoint.rate_limit)
    if "order" in fields and endpoint.order not in endpoints_pb2.DeliveryOrder.values():
        violations.add("endpoint.order", "is not a delivery order")


def check_rate_limit(violations: FieldViolations, field: str, rate_limit: endpoints_pb2.RateLimit) -> None:
    """No limit (0 requests, no period), or 1 to MAX_RATE_LIMIT requests per second or minute."""
    if rate_limit.requests == 0:
        if rate_limit.period != endpoints_pb2.RATE_LIMIT_PERIOD_UNSPECIFIED:
            violations.add(f"{field}.requests", "is required with a period (1 to 100000)")
        return
    if not 1 <= rate_limit.requests <= MAX_RATE_LIMIT:
        violations.add(f"{field}.requests", f"must be 1 to {MAX_RATE_LIMIT}")
    if rate_limit.period not in (endpoints_pb2.RATE_LIMIT_PERIOD_SECOND, endpoints_pb2.RATE_LIMIT_PERIOD_MINUTE):
        violations.add(f"{field}.period", "must be RATE_LIMIT_PERIOD_SECOND or RATE_LIMIT_PERIOD_MINUTE")
