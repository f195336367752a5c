"""Filters of an account: which events it wants, and which of its endpoints they go to.

References are checked inside the write transaction: applications, event types and levels must be
registered, and every endpoint must be the caller's own. An endpoint of another account is
reported exactly like one that does not exist, so a filter reveals nothing about other accounts.
"""

from __future__ import annotations

import uuid

from google.protobuf import field_mask_pb2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hooks.registry.v1 import filters_pb2
from services.common.errors import FieldViolations
from services.registry.database import FILTER, Database
from services.registry.endpoints import ENDPOINTS, mask_fields
from services.registry.models import (
    Application,
    Endpoint,
    Filter,
    FilterApplication,
    FilterEndpoint,
    FilterEventType,
    FilterLevel,
    utcnow,
)
from services.registry.ownership import Owned, require_id
from services.registry.quotas import Quotas
from services.registry.validation import (
    MAX_FILTER_ENTRIES,
    MAX_FILTER_NAME,
    MAX_ID,
    NAME_PATTERN,
    check_text,
    is_possible_id,
)

WRITABLE = ("name", "enabled", "applications", "event_types", "levels", "endpoint_ids")
OUTPUT_ONLY = ("id", "create_time", "update_time")


#: An account's filters: every get, list, update and delete reads them through this; listed oldest first.
FILTERS = Owned(Filter, noun="filter", order=(Filter.create_time, Filter.id))


async def _check_fields(
    session: AsyncSession, account_id: str, message: filters_pb2.Filter, fields: set[str], quotas: Quotas
) -> None:
    violations = FieldViolations()
    if "name" in fields:
        check_text(violations, "filter.name", message.name, limit=MAX_FILTER_NAME)
    too_long = FieldViolations()
    for name in ("applications", "event_types", "levels"):
        if name in fields and len(getattr(message, name)) > MAX_FILTER_ENTRIES:
            too_long.add(f"filter.{name}", f"must have at most {MAX_FILTER_ENTRIES} entries")
    if too_long:
        raise too_long
    if "endpoint_ids" in fields:
        quotas.check_endpoints_of_filter(len(message.endpoint_ids))

    catalog: dict[str, dict[str, set[str]]] = {}
    wanted_apps: set[str] = set()
    if "applications" in fields:
        wanted_apps.update(message.applications)
    if "event_types" in fields:
        wanted_apps.update(ref.application for ref in message.event_types)
    if "levels" in fields:
        wanted_apps.update(ref.application for ref in message.levels)
    # Only a well-formed name can be registered (and only it may reach the database).
    wanted_apps = {name for name in wanted_apps if NAME_PATTERN.fullmatch(name)}
    if wanted_apps:
        for app in (await session.execute(select(Application).where(Application.name.in_(wanted_apps)))).scalars():
            catalog[app.name] = {et.key: {lv.key for lv in et.levels} for et in app.event_types}

    if "applications" in fields:
        seen: set[str] = set()
        for i, name in enumerate(message.applications):
            where = f"filter.applications[{i}]"
            if not name:
                violations.add(where, "must name an application")
            elif name not in catalog:
                violations.add(where, f"no application {name!r} is registered")
            elif name in seen:
                violations.add(where, f"{name!r} is listed twice")
            seen.add(name)
    if "event_types" in fields:
        seen_types: set[tuple[str, str]] = set()
        for i, ref in enumerate(message.event_types):
            where = f"filter.event_types[{i}]"
            if not ref.application or not ref.event_type:
                violations.add(where, "needs both application and event_type")
            elif ref.application not in catalog:
                violations.add(where, f"no application {ref.application!r} is registered")
            elif ref.event_type not in catalog[ref.application]:
                violations.add(where, f"application {ref.application!r} has no event type {ref.event_type!r}")
            elif (ref.application, ref.event_type) in seen_types:
                violations.add(where, "is listed twice")
            seen_types.add((ref.application, ref.event_type))
    if "levels" in fields:
        seen_levels: set[tuple[str, str, str]] = set()
        for i, level in enumerate(message.levels):
            where = f"filter.levels[{i}]"
            if not level.application or not level.event_type or not level.level:
                violations.add(where, "needs application, event_type and level")
            elif level.application not in catalog:
                violations.add(where, f"no application {level.application!r} is registered")
            elif level.event_type not in catalog[level.application]:
                violations.add(where, f"application {level.application!r} has no event type {level.event_type!r}")
            elif level.level not in catalog[level.application][level.event_type]:
                violations.add(
                    where,
                    f"event type {level.event_type!r} of application {level.application!r} has no level {level.level!r}",
                )
            elif (level.application, level.event_type, level.level) in seen_levels:
                violations.add(where, "is listed twice")
            seen_levels.add((level.application, level.event_type, level.level))
    if "endpoint_ids" in fields:
        if not message.endpoint_ids:
            violations.add("filter.endpoint_ids", "needs at least one endpoint of your account")
        candidates = [e for e in message.endpoint_ids if is_possible_id(e)]
        owned = set()
        if candidates:
            owned = set(
                (
                    await session.execute(
                        ENDPOINTS.statement(account_id)
                        .with_only_columns(Endpoint.id)
                        .where(Endpoint.id.in_(candidates))
                    )
                ).scalars()
            )
        seen_ids: set[str] = set()
        for i, endpoint_id in enumerate(message.endpoint_ids):
            where = f"filter.endpoint_ids[{i}]"
            if endpoint_id not in owned:
                violations.add(where, f"no endpoint {endpoint_id[:MAX_ID]!r} in your account")
            elif endpoint_id in seen_ids:
                violations.add(where, "is listed twice")
            seen_ids.add(endpoint_id)
    if violations:
        raise violations


def _apply(row: Filter, message: filters_pb2.Filter, fields: set[str]) -> None:
    if "name" in fields:
        row.name = message.name
    if "enabled" in fields:
        row.enabled = message.enabled
    if "applications" in fields:
        row.applications = [FilterApplication(position=i, application=a) for i, a in enumerate(message.applications)]
    if "event_types" in fields:
        row.event_types = [
            FilterEventType(position=i, application=r.application, event_type=r.event_type)
            for i, r in enumerate(message.event_types)
        ]
    if "levels" in fields:
        row.levels = [
            FilterLevel(position=i, application=r.application, event_type=r.event_type, level=r.level)
            for i, r in enumerate(message.levels)
        ]
    if "endpoint_ids" in fields:
        row.endpoints = [FilterEndpoint(position=i, endpoint_id=e) for i, e in enumerate(message.endpoint_ids)]


async def create_filter(database: Database, account_id: str, message: filters_pb2.Filter, *, quotas: Quotas) -> Filter:
    fields = set(WRITABLE)
    async with database.write() as unit:
        session = unit.session
        await _check_fields(session, account_id, message, fields, quotas)
        await quotas.check_new_filter(session, account_id)
        now = utcnow()
        row = Filter(
            id=str(uuid.uuid4()),
            account_id=account_id,
            create_time=now,
            update_time=now,
            applications=[],
            event_types=[],
            levels=[],
            endpoints=[],
        )
        _apply(row, message, fields)
        session.add(row)
        await session.flush()
        unit.record(FILTER, row.id, account_id)
    return row


async def list_filters(
    database: Database, account_id: str, page_size: int, page_token: str, endpoint_id: str
) -> tuple[list[Filter], str]:
    triggering = Filter.id.in_(select(FilterEndpoint.filter_id).where(FilterEndpoint.endpoint_id == endpoint_id))
    parameter = ("endpoint_id", endpoint_id, MAX_ID)
    return await FILTERS.list(database, account_id, page_size, page_token, parameter=parameter, where=triggering)


async def update_filter(
    database: Database, account_id: str, message: filters_pb2.Filter, mask: field_mask_pb2.FieldMask, *, quotas: Quotas
) -> Filter:
    require_id("filter.id", message.id)
    fields = mask_fields(mask, WRITABLE, OUTPUT_ONLY)
    async with database.write() as unit:
        session = unit.session
        row = await FILTERS.one(session, account_id, message.id)
        await _check_fields(session, account_id, message, fields, quotas)
        _apply(row, message, fields)
        row.update_time = utcnow()
        await session.flush()
        unit.record(FILTER, row.id, account_id)
    return row


async def delete_filter(database: Database, account_id: str, filter_id: str) -> None:
    require_id("id", filter_id)
    async with database.write() as unit:
        row = await FILTERS.one(unit.session, account_id, filter_id)
        await unit.session.delete(row)
        unit.record(FILTER, filter_id, account_id)
