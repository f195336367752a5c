"""Endpoints of an account: where notifications go.

Every read and write is scoped to the caller's account; another account's endpoint is NOT_FOUND,
exactly like one that does not exist. Secrets are write-only: generated when not given, accepted
when given in the Standard Webhooks shape, and only their last four characters are ever shown.
On update, an empty `secret` keeps the current one, unless the mask names `secret` explicitly:
then a new one is generated. Replacing the secret either way is a rotation: the one replaced keeps
signing deliveries beside the new one for the operator's grace period (EndpointPolicy), as Svix does;
rotating again within it drops the older one at once (one previous secret at most).

Header values are secrets too: written, never shown (`header_hints`). On update the mask path
`headers` replaces the whole set; `headers.<name>` paths change only the headers they name (set from
the request's map, or removed when it lacks them), so a caller keeps a value without sending it again;
with an empty mask, an empty map keeps the headers as they are (as an empty `secret` keeps the secret).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from google.protobuf import field_mask_pb2
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hooks.registry.v1 import endpoints_pb2
from services.common.db import utcnow
from services.common.errors import AlreadyExists, FieldViolations, NotFound
from services.registry.database import ENDPOINT, FILTER, Database, Write
from services.registry.endpoint_policy import EndpointPolicy
from services.registry.models import Endpoint, Filter, FilterEndpoint
from services.registry.ownership import Owned, require_id
from services.registry.quotas import Quotas
from services.registry.signing_secrets import generate_secret, normalize_secret
from services.registry.validation import (
    ENDPOINT_TYPE_NUMBERS,
    ENDPOINT_TYPES,
    HEADER_NAME,
    MAX_ENDPOINT_NAME,
    MAX_HEADER_NAME,
    add_target_refusal,
    check_endpoint_fields,
    check_headers,
    check_id,
    check_text,
    target_address_refusal,
)

#: An account's endpoints: every get, list, update and delete reads them through this; listed by
#: name (unique within an account), then id.
ENDPOINTS = Owned(Endpoint, noun="endpoint", order=(Endpoint.name, Endpoint.id))

WRITABLE = ("name", "description", "target", "enabled", "headers", "ca_certificate", "secret", "rate_limit", "order")
#: The proto's rate limit periods and delivery orders as stored.
RATE_LIMIT_PERIODS = {
    endpoints_pb2.RATE_LIMIT_PERIOD_SECOND: "second",
    endpoints_pb2.RATE_LIMIT_PERIOD_MINUTE: "minute",
}
DELIVERY_ORDERS = {
    endpoints_pb2.DELIVERY_ORDER_UNSPECIFIED: "unordered",
    endpoints_pb2.DELIVERY_ORDER_UNORDERED: "unordered",
    endpoints_pb2.DELIVERY_ORDER_ORDERED: "ordered",
}


def _set_delivery_options(row: Endpoint, message: endpoints_pb2.Endpoint, fields: set[str]) -> None:
    """The rate limit and order named in `fields` (checked already by check_endpoint_fields)."""
    if "rate_limit" in fields:
        row.rate_limit_requests = message.rate_limit.requests
        row.rate_limit_period = (
            RATE_LIMIT_PERIODS.get(message.rate_limit.period, "") if message.rate_limit.requests else ""
        )
    if "order" in fields:
        row.delivery_order = DELIVERY_ORDERS[message.order]


OUTPUT_ONLY = (
    "id",
    "secret_hint",
    "header_hints",
    "previous_secret_hint",
    "previous_secret_expire_time",
    "generated_secret",
    "disabled_reason",
    "paused",
    "pause_time",
    "create_time",
    "update_time",
)
#: An update mask path naming one header: `headers.<name>`.
HEADER_PATH = "headers."
MAX_REASON = 1000


def _type_name(violations: FieldViolations, number: endpoints_pb2.EndpointType) -> str:
    name = ENDPOINT_TYPES.get(number)
    if name is None:
        violations.add(
            "endpoint.type",
            "must be one of ENDPOINT_TYPE_WEBHOOK, ENDPOINT_TYPE_SLACK, ENDPOINT_TYPE_TEAMS, "
            "ENDPOINT_TYPE_GOOGLE_CHAT, ENDPOINT_TYPE_EMAIL",
        )
        return ""
    return name


def _name_taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"your account already has an endpoint named {name!r}; choose another name or update that one")


async def _stored(unit: Write, row: Endpoint) -> None:
    """Writes the endpoint created or changed in `unit` (a name taken meanwhile is ALREADY_EXISTS)
    and logs the change."""
    try:
        await unit.session.flush()
    except IntegrityError:
        raise _name_taken(row.name) from None
    unit.record(ENDPOINT, row.id, row.account_id)


async def _name_is_taken(session: AsyncSession, account_id: str, name: str) -> bool:
    return bool(
        await session.scalar(
            ENDPOINTS.statement(account_id).with_only_columns(Endpoint.id).where(Endpoint.name == name)
        )
    )


def _replace_secret(row: Endpoint, secret: str, policy: EndpointPolicy) -> None:
    """A rotation: `secret` signs from now on, and the one it replaces beside it for the grace period."""
    if secret == row.secret:
        return
    if policy.rotation_grace > timedelta(0):
        row.previous_secret, row.previous_secret_expire_time = row.secret, utcnow() + policy.rotation_grace
    else:
        row.previous_secret, row.previous_secret_expire_time = "", None
    row.secret = secret


async def create_endpoint(
    database: Database, account_id: str, message: endpoints_pb2.Endpoint, *, quotas: Quotas, policy: EndpointPolicy
) -> Endpoint:
    violations = FieldViolations()
    endpoint_type = _type_name(violations, message.type)
    check_endpoint_fields(message, endpoint_type, set(WRITABLE), violations, email_domains=policy.email_domains)
    if endpoint_type != "email":
        add_target_refusal(violations, endpoint_type, await target_address_refusal(message.target, policy.networks))
    if violations:
        raise violations
    secret = normalize_secret(message.secret) if message.secret else generate_secret()
    async with database.write() as unit:
        session = unit.session
        if await _name_is_taken(session, account_id, message.name):
            raise _name_taken(message.name)
        await quotas.check_new_endpoint(session, account_id)
        now = utcnow()
        row = Endpoint(
            id=str(uuid.uuid4()),
            account_id=account_id,
            name=message.name,
            description=message.description,
            type=endpoint_type,
            target=message.target,
            enabled=message.enabled,
            headers=dict(message.headers),
            ca_certificate=message.ca_certificate,
            secret=secret,
            disabled_reason="",
            create_time=now,
            update_time=now,
        )
        _set_delivery_options(row, message, set(WRITABLE))
        session.add(row)
        await _stored(unit, row)
    return row


async def list_endpoints(
    database: Database, account_id: str, page_size: int, page_token: str, name_contains: str
) -> tuple[list[Endpoint], str]:
    named = func.lower(Endpoint.name).contains(name_contains.lower(), autoescape=True)
    parameter = ("name_contains", name_contains, MAX_ENDPOINT_NAME)
    return await ENDPOINTS.list(database, account_id, page_size, page_token, parameter=parameter, where=named)


def mask_fields(
    mask: field_mask_pb2.FieldMask,
    writable: tuple[str, ...],
    output_only: tuple[str, ...],
    immutable: tuple[str, ...] = (),
) -> set[str]:
    """The fields an update changes: the mask's paths, or every writable field when it is empty."""
    if not mask.paths:
        return set(writable)
    violations = FieldViolations()
    for path in mask.paths:
        if path in writable:
            continue
        if path in output_only:
            violations.add("update_mask", f"{path!r} is output only and cannot be set")
        elif path in immutable:
            violations.add("update_mask", f"{path!r} cannot be changed once created")
        else:
            violations.add("update_mask", f"unknown field {path!r}; writable fields are {', '.join(writable)}")
    if violations:
        raise violations
    return set(mask.paths)


def _named_headers(mask: field_mask_pb2.FieldMask) -> tuple[field_mask_pb2.FieldMask, set[str]]:
    """The mask without its `headers.<name>` paths, and those names (lower case: header names are
    case-insensitive, and a JSON field mask cannot carry upper case)."""
    names: set[str] = set()
    rest = field_mask_pb2.FieldMask()
    violations = FieldViolations()
    for path in mask.paths:
        if not path.startswith(HEADER_PATH):
            rest.paths.append(path)
            continue
        name = path[len(HEADER_PATH) :].strip("`")  # AIP-161 quotes a key that is not an identifier
        if not HEADER_NAME.fullmatch(name) or len(name) > MAX_HEADER_NAME:
            violations.add("update_mask", f"{path[: MAX_HEADER_NAME * 2]!r} does not name a header (headers.<name>)")
        names.add(name.lower())
    if violations:
        raise violations
    return rest, names


def _updated_headers(
    current: dict[str, str],
    message: endpoints_pb2.Endpoint,
    mask: field_mask_pb2.FieldMask,
    fields: set[str],
    named: set[str],
) -> dict[str, str] | None:
    """The endpoint's headers after the update, or None when it leaves them as they are."""
    given = dict(message.headers)
    if "headers" in fields:
        if not mask.paths and not given:
            return None  # an empty mask with no headers keeps them: their values are never shown to send back
        return given
    if not named:
        return None
    kept = {name: value for name, value in current.items() if name.lower() not in named}
    return kept | {name: value for name, value in given.items() if name.lower() in named}


async def update_endpoint(
    database: Database,
    account_id: str,
    message: endpoints_pb2.Endpoint,
    mask: field_mask_pb2.FieldMask,
    *,
    policy: EndpointPolicy,
) -> Endpoint:
    require_id("endpoint.id", message.id)
    own_paths, named_headers = _named_headers(mask)
    if named_headers and not own_paths.paths:
        fields: set[str] = set()
    else:
        fields = mask_fields(own_paths, WRITABLE, OUTPUT_ONLY, immutable=("type",))
    violations = FieldViolations()
    # Looked up before the write transaction, which a slow DNS answer must not hold open; applied
    # below once the endpoint's type is known (an e-mail endpoint's target is no URL).
    refusal = None
    if "target" in fields and message.type != ENDPOINT_TYPE_NUMBERS["email"]:
        refusal = await target_address_refusal(message.target, policy.networks)
    async with database.write() as unit:
        session = unit.session
        row = await ENDPOINTS.one(session, account_id, message.id)
        if message.type and ENDPOINT_TYPES.get(message.type) != row.type:
            violations.add("endpoint.type", f"cannot be changed (it is {row.type}); create a new endpoint instead")
        check_endpoint_fields(message, row.type, fields - {"headers"}, violations, email_domains=policy.email_domains)
        add_target_refusal(violations, row.type, refusal)
        headers = _updated_headers(row.headers or {}, message, mask, fields, named_headers)
        if headers is not None:
            check_headers(violations, "endpoint.headers", headers)
        if violations:
            raise violations
        if "name" in fields and message.name != row.name:
            if await _name_is_taken(session, account_id, message.name):
                raise _name_taken(message.name)
            row.name = message.name
        if "description" in fields:
            row.description = message.description
        if "target" in fields:
            row.target = message.target
        if headers is not None:
            row.headers = headers
        if "ca_certificate" in fields:
            row.ca_certificate = message.ca_certificate
        if "secret" in fields:
            if message.secret:
                _replace_secret(row, normalize_secret(message.secret), policy)
            elif mask.paths:  # named explicitly with no value: a new one
                _replace_secret(row, generate_secret(), policy)
        if "enabled" in fields:
            if message.enabled and not row.enabled:
                row.disabled_reason = ""
            row.enabled = message.enabled
        _set_delivery_options(row, message, fields)
        row.update_time = utcnow()
        await _stored(unit, row)
    return row


async def delete_endpoint(database: Database, account_id: str, endpoint_id: str) -> None:
    """Deletes the endpoint and takes it out of every filter that triggered it (a filter left with
    no endpoint triggers nothing until one is added)."""
    require_id("id", endpoint_id)
    async with database.write() as unit:
        session = unit.session
        row = await ENDPOINTS.one(session, account_id, endpoint_id)
        filter_ids = list(
            (
                await session.execute(select(FilterEndpoint.filter_id).where(FilterEndpoint.endpoint_id == endpoint_id))
            ).scalars()
        )
        await session.execute(delete(FilterEndpoint).where(FilterEndpoint.endpoint_id == endpoint_id))
        if filter_ids:
            await session.execute(update(Filter).where(Filter.id.in_(filter_ids)).values(update_time=utcnow()))
        await session.delete(row)
        unit.record(ENDPOINT, endpoint_id, account_id)
        for filter_id in sorted(set(filter_ids)):
            unit.record(FILTER, filter_id, account_id)


async def set_paused(database: Database, account_id: str, endpoint_id: str, *, paused: bool) -> Endpoint:
    """Pauses (`paused`) or resumes the account's endpoint; one already so is answered as it is,
    unchanged. The change goes down the change stream like any other, so the senders hold its
    deliveries from their next attempt on, or let the held ones go as soon as it is resumed."""
    require_id("id", endpoint_id)
    async with database.write() as unit:
        row = await ENDPOINTS.one(unit.session, account_id, endpoint_id)
        if (row.pause_time is not None) == paused:
            return row
        now = utcnow()
        row.pause_time = now if paused else None
        row.update_time = now
        unit.record(ENDPOINT, row.id, row.account_id)
    return row


async def delivery_target(database: Database, endpoint_id: str) -> Endpoint:
    require_id("endpoint_id", endpoint_id)
    async with database.read() as session:
        row = await session.get(Endpoint, endpoint_id)
    if row is None:
        raise NotFound(f"no endpoint {endpoint_id!r}")
    return row


async def disable_endpoint(database: Database, endpoint_id: str, reason: str) -> tuple[Endpoint, bool]:
    """Disables an endpoint on hooks' own initiative; returns (it, whether it changed)."""
    violations = FieldViolations()
    check_id(violations, "endpoint_id", endpoint_id)
    if not reason.strip():
        violations.add("reason", "is required: it is shown to the endpoint's owner")
    else:
        check_text(violations, "reason", reason, limit=MAX_REASON)
    if violations:
        raise violations
    async with database.write() as unit:
        row = await unit.session.get(Endpoint, endpoint_id)
        if row is None:
            raise NotFound(f"no endpoint {endpoint_id!r}")
        if not row.enabled:
            return row, False
        row.enabled = False
        row.disabled_reason = reason
        row.update_time = utcnow()
        unit.record(ENDPOINT, row.id, row.account_id)
    return row, True
