"""Endpoints of an account: where notifications go.

Every read and write is scoped to the caller's account; another account's endpoint is NOT_FOUND,
exactly like one that does not exist. Secrets are write-only: generated when not given, accepted
when given in the Standard Webhooks shape, and only their last four characters are ever shown.
On update, an empty `secret` keeps the current one, unless the mask names `secret` explicitly:
then a new one is generated (rotation).
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from google.protobuf import field_mask_pb2
from hooks.registry.v1 import endpoints_pb2
from services.common.errors import FieldViolations
from services.registry.database import ENDPOINT, FILTER, Database
from services.registry.models import Endpoint, Filter, FilterEndpoint, utcnow
from services.registry.page_tokens import decode_page_token, encode_page_token, page_size_of
from services.registry.problems import AlreadyExists, NotFound, raise_if
from services.registry.signing_secrets import generate_secret, normalize_secret
from services.registry.validation import (
    ENDPOINT_TYPES,
    MAX_ENDPOINT_NAME,
    MAX_ID,
    check_endpoint_fields,
    check_id,
)

WRITABLE = ("name", "description", "target", "enabled", "headers", "ca_certificate", "secret")
OUTPUT_ONLY = ("id", "secret_hint", "disabled_reason", "create_time", "update_time")
MAX_REASON = 1000


def _type_name(violations: FieldViolations, number: int) -> str:
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


def not_found(endpoint_id: str) -> NotFound:
    return NotFound(f"no endpoint {endpoint_id!r} in your account")


async def create_endpoint(database: Database, account_id: str, message: endpoints_pb2.Endpoint) -> Endpoint:
    violations = FieldViolations()
    endpoint_type = _type_name(violations, message.type)
    check_endpoint_fields(message, endpoint_type, set(WRITABLE), violations)
    raise_if(violations)
    secret = normalize_secret(message.secret) if message.secret else generate_secret()
    async with database.write() as unit:
        session = unit.session
        taken = await session.scalar(
            select(Endpoint.id).where(Endpoint.account_id == account_id, Endpoint.name == message.name)
        )
        if taken:
            raise _name_taken(message.name)
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
        session.add(row)
        try:
            await session.flush()
        except IntegrityError:
            raise _name_taken(message.name) from None
        unit.record(ENDPOINT, row.id, account_id)
    return row


async def _owned(session, account_id: str, endpoint_id: str) -> Endpoint:
    row = await session.get(Endpoint, endpoint_id) if len(endpoint_id) <= MAX_ID else None
    if row is None or row.account_id != account_id:
        raise not_found(endpoint_id)
    return row


async def get_endpoint(database: Database, account_id: str, endpoint_id: str) -> Endpoint:
    violations = FieldViolations()
    check_id(violations, "id", endpoint_id)
    raise_if(violations)
    async with database.read() as session:
        return await _owned(session, account_id, endpoint_id)


async def list_endpoints(
    database: Database, account_id: str, page_size: int, page_token: str, name_contains: str
) -> tuple[list[Endpoint], str]:
    if len(name_contains) > MAX_ENDPOINT_NAME:
        raise FieldViolations([("name_contains", f"must be at most {MAX_ENDPOINT_NAME} characters")])
    size = page_size_of(page_size)
    query = {"list": "endpoints", "name_contains": name_contains}
    after = decode_page_token(page_token, query)
    statement = select(Endpoint).where(Endpoint.account_id == account_id)
    if name_contains:
        statement = statement.where(func.lower(Endpoint.name).contains(name_contains.lower(), autoescape=True))
    if after:
        if len(after) != 2 or not all(isinstance(v, str) for v in after):
            raise FieldViolations([("page_token", "is not a page token of this list; start again without one")])
        statement = statement.where(
            (Endpoint.name > after[0]) | ((Endpoint.name == after[0]) & (Endpoint.id > after[1]))
        )
    statement = statement.order_by(Endpoint.name, Endpoint.id).limit(size + 1)
    async with database.read() as session:
        rows = list((await session.execute(statement)).scalars())
    next_token = ""
    if len(rows) > size:
        rows = rows[:size]
        next_token = encode_page_token([rows[-1].name, rows[-1].id], query)
    return rows, next_token


def mask_fields(mask: field_mask_pb2.FieldMask, writable: tuple[str, ...], output_only: tuple[str, ...], immutable: tuple[str, ...] = ()) -> set[str]:
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
    raise_if(violations)
    return set(mask.paths)


async def update_endpoint(
    database: Database, account_id: str, message: endpoints_pb2.Endpoint, mask: field_mask_pb2.FieldMask
) -> Endpoint:
    violations = FieldViolations()
    check_id(violations, "endpoint.id", message.id)
    raise_if(violations)
    fields = mask_fields(mask, WRITABLE, OUTPUT_ONLY, immutable=("type",))
    async with database.write() as unit:
        session = unit.session
        row = await _owned(session, account_id, message.id)
        if message.type and ENDPOINT_TYPES.get(message.type) != row.type:
            violations.add("endpoint.type", f"cannot be changed (it is {row.type}); create a new endpoint instead")
        check_endpoint_fields(message, row.type, fields, violations)
        raise_if(violations)
        if "name" in fields and message.name != row.name:
            taken = await session.scalar(
                select(Endpoint.id).where(Endpoint.account_id == account_id, Endpoint.name == message.name)
            )
            if taken:
                raise _name_taken(message.name)
            row.name = message.name
        if "description" in fields:
            row.description = message.description
        if "target" in fields:
            row.target = message.target
        if "headers" in fields:
            row.headers = dict(message.headers)
        if "ca_certificate" in fields:
            row.ca_certificate = message.ca_certificate
        if "secret" in fields:
            if message.secret:
                row.secret = normalize_secret(message.secret)
            elif mask.paths:  # named explicitly with no value: rotate
                row.secret = generate_secret()
        if "enabled" in fields:
            if message.enabled and not row.enabled:
                row.disabled_reason = ""
            row.enabled = message.enabled
        row.update_time = utcnow()
        try:
            await session.flush()
        except IntegrityError:
            raise _name_taken(message.name) from None
        unit.record(ENDPOINT, row.id, account_id)
    return row


async def delete_endpoint(database: Database, account_id: str, endpoint_id: str) -> None:
    """Deletes the endpoint and takes it out of every filter that triggered it (a filter left with
    no endpoint triggers nothing until one is added)."""
    violations = FieldViolations()
    check_id(violations, "id", endpoint_id)
    raise_if(violations)
    async with database.write() as unit:
        session = unit.session
        row = await _owned(session, account_id, endpoint_id)
        filter_ids = list(
            (await session.execute(select(FilterEndpoint.filter_id).where(FilterEndpoint.endpoint_id == endpoint_id))).scalars()
        )
        await session.execute(delete(FilterEndpoint).where(FilterEndpoint.endpoint_id == endpoint_id))
        if filter_ids:
            await session.execute(update(Filter).where(Filter.id.in_(filter_ids)).values(update_time=utcnow()))
        await session.delete(row)
        unit.record(ENDPOINT, endpoint_id, account_id)
        for filter_id in sorted(set(filter_ids)):
            unit.record(FILTER, filter_id, account_id)


async def delivery_target(database: Database, endpoint_id: str) -> Endpoint:
    violations = FieldViolations()
    check_id(violations, "endpoint_id", endpoint_id)
    raise_if(violations)
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
    elif len(reason) > MAX_REASON:
        violations.add("reason", f"must be at most {MAX_REASON} characters")
    raise_if(violations)
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
