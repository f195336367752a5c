"""Registering applications: the seed's semantics, and no destruction by accident.

A registration is the whole definition. The name is the identity (immutable; re-registering the
same name updates it, there is no rename); the title may change; event types and levels are
added, changed (title, schema, order) and removed to match the document, order kept. The answer
carries the diff (application_diff.py) and what it does to filters; the same definition again
changes nothing, and says so.

Filters that reference a removed event type or level lose that reference in the same transaction,
and each such filter is logged as changed. A filter whose event-type or level set becomes empty
that way is also disabled: an empty set matches everything, so leaving it enabled would widen
what the filter sends instead of narrowing it. Its owner can see it disabled and fix it. Because
that cannot be undone by registering again, a registration that would do it to any filter is
refused (FAILED_PRECONDITION naming what would be lost, nothing changed) unless the caller says
`allow_removals`. A dry run answers the diff and the counts without changing anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.message import Message
from google.rpc import error_details_pb2
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from hooks.registry.v1 import applications_pb2
from hooks_client.registration import schema_of, schema_version
from hooks_client.registry import REMOVAL_VIOLATION_TYPE
from services.common import builtin_application
from services.common.db import utcnow
from services.common.errors import FailedPrecondition, FieldViolations, NotFound
from services.common.paging import Keyset
from services.registry.application_diff import Removals, diff_applications
from services.registry.database import APPLICATION, FILTER, Database, Write
from services.registry.messages import application_message, timestamp
from services.registry.models import Application, EventType, Filter, FilterEventType, FilterLevel, Level
from services.registry.validation import MAX_ID, NAME_PATTERN, check_application, check_text

#: ListApplications' order: by name (the identity).
PAGES = Keyset[Application]("applications", Application.name)
#: hooks' own events, published by the sender; registered at every start.
BUILTIN_APPLICATION = applications_pb2.Application(
    name=builtin_application.NAME,
    title="Hooks",
    event_types=[
        applications_pb2.EventType(id=builtin_application.ENDPOINT_DISABLED, title="Endpoint disabled"),
        applications_pb2.EventType(id=builtin_application.TEST, title="Test"),
    ],
)


@dataclass(frozen=True)
class Registration:
    """The application as registered (or, in a dry run, as it would be), whether it is new, the diff."""

    application: applications_pb2.Application
    created: bool
    diff: applications_pb2.RegistrationDiff


@dataclass
class _Loss:
    """A filter that loses references: what it keeps, and whether it becomes disabled."""

    filter: Filter
    kept_types: list[FilterEventType]
    kept_levels: list[FilterLevel]
    disables: bool


class RemovalsNotAllowed(FailedPrecondition):
    """The registration removes event types or levels that filters reference; with a
    PreconditionFailure naming each (`event_types/<id>`, `event_types/<id>/levels/<id>`)."""

    def __init__(self, message: str, subjects: list[tuple[str, str]]):
        super().__init__(message)
        self.subjects = subjects

    def details(self) -> list[Message]:
        return [
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=REMOVAL_VIOLATION_TYPE, subject=subject, description=description
                    )
                    for subject, description in self.subjects
                ]
            )
        ]


def _with_versions(definition: applications_pb2.Application) -> applications_pb2.Application:
    """The definition with each event type's `schema_version` set from its schema."""
    result = applications_pb2.Application()
    result.CopyFrom(definition)
    for et in result.event_types:
        schema = schema_of(et)
        et.schema_version = schema_version(schema) if schema is not None else ""
    result.ClearField("create_time")
    result.ClearField("update_time")
    return result


async def _losses(session: AsyncSession, application: str, removals: Removals) -> list[_Loss]:
    """The filters that lose references to what `removals` removes, each with what it keeps."""
    removed_types = removals.event_types
    removed_levels = [(application, et, level) for et, level in removals.levels]
    filter_ids: set[str] = set()
    if removed_types:
        for table in (FilterEventType, FilterLevel):
            filter_ids.update(
                (
                    await session.execute(
                        select(table.filter_id).where(
                            table.application == application, table.event_type.in_(removed_types)
                        )
                    )
                ).scalars()
            )
    if removed_levels:
        filter_ids.update(
            (
                await session.execute(
                    select(FilterLevel.filter_id).where(
                        tuple_(FilterLevel.application, FilterLevel.event_type, FilterLevel.level).in_(removed_levels)
                    )
                )
            ).scalars()
        )
    if not filter_ids:
        return []
    gone_types = {(application, key) for key in removed_types}
    gone_levels = set(removed_levels)
    losses = []
    rows = (await session.execute(select(Filter).where(Filter.id.in_(filter_ids)).order_by(Filter.id))).scalars()
    for row in rows:
        kept_types = [e for e in row.event_types if (e.application, e.event_type) not in gone_types]
        kept_levels = [
            lv
            for lv in row.levels
            if (lv.application, lv.event_type) not in gone_types
            and (lv.application, lv.event_type, lv.level) not in gone_levels
        ]
        empties = bool((row.event_types and not kept_types) or (row.levels and not kept_levels))
        losses.append(_Loss(row, kept_types, kept_levels, disables=empties and row.enabled))
    return losses


def _count(diff: applications_pb2.RegistrationDiff, losses: list[_Loss]) -> None:
    diff.filters_losing_references = len(losses)
    diff.filters_disabled = sum(loss.disables for loss in losses)
    diff.accounts = len({loss.filter.account_id for loss in losses})


def _refusal(application: str, removals: Removals, losses: list[_Loss]) -> RemovalsNotAllowed:
    """What would be lost, by removed event type and level, and how many filters each costs."""
    subjects = []
    for et in removals.event_types:
        users = sum(
            any(e.event_type == et for e in loss.filter.event_types)
            or any(lv.event_type == et for lv in loss.filter.levels)
            for loss in losses
        )
        if users:
            subjects.append((f"event_types/{et}", f"event type {et!r} is referenced by {users} filter(s)"))
    for et, level in removals.levels:
        users = sum(any(lv.event_type == et and lv.level == level for lv in loss.filter.levels) for loss in losses)
        if users:
            subjects.append(
                (f"event_types/{et}/levels/{level}", f"level {et!r}/{level!r} is referenced by {users} filter(s)")
            )
    disabled = sum(loss.disables for loss in losses)
    accounts = len({loss.filter.account_id for loss in losses})
    named = "; ".join(description for _, description in subjects)
    message = (
        f"registering {application!r} this way removes what filters use ({named}): {len(losses)} filter(s) of "
        f"{accounts} account(s) would lose these references and {disabled} would be disabled. Nothing was changed; "
        "register with allow_removals (hooks apps register --yes) to go ahead, or --dry-run to see the whole diff"
    )
    return RemovalsNotAllowed(message, subjects)


def _would_be(definition: applications_pb2.Application, app: Application | None) -> applications_pb2.Application:
    """A dry run's answer: the definition as it would be stored."""
    result = _with_versions(definition)
    if app is not None:
        result.create_time.CopyFrom(timestamp(app.create_time))
        result.update_time.CopyFrom(timestamp(app.update_time))
    return result


async def register_application(
    database: Database,
    definition: applications_pb2.Application,
    *,
    builtin: bool = False,
    dry_run: bool = False,
    allow_removals: bool = False,
) -> Registration:
    """Creates or updates the application to match `definition` (see the module)."""
    violations = check_application(definition)
    if violations:
        raise violations
    if definition.name == builtin_application.NAME and not builtin:
        raise FailedPrecondition(
            f"application {builtin_application.NAME!r} is hooks' own and registered by the registry itself; choose another name"
        )
    wanted = _with_versions(definition)
    if dry_run:
        async with database.read() as session:
            app = await session.get(Application, definition.name)
            before = application_message(app) if app is not None else None
            diff, removals = diff_applications(before, wanted)
            _count(diff, await _losses(session, definition.name, removals) if before is not None else [])
        return Registration(_would_be(definition, app), app is None, diff)
    async with database.write() as unit:
        session = unit.session
        app = await session.get(Application, definition.name)
        created = app is None
        before = application_message(app) if app is not None else None
        diff, removals = diff_applications(before, wanted)
        losses = await _losses(session, definition.name, removals) if before is not None else []
        _count(diff, losses)
        if losses and not allow_removals:
            raise _refusal(definition.name, removals, losses)
        if diff.unchanged and before is not None:  # (a new application is never unchanged)
            return Registration(before, False, diff)
        if app is None:
            app = Application(name=definition.name, title=definition.title, event_types=[])
            session.add(app)
        _apply(app, wanted)
        app.update_time = utcnow()
        unit.record(APPLICATION, app.name)
        _drop_references(unit, losses)
        await session.flush()
        registered = application_message(app)
    return Registration(registered, created, diff)


def _apply(app: Application, definition: applications_pb2.Application) -> None:
    """Makes the stored rows match the definition (schema versions filled in)."""
    existing = {et.key: et for et in app.event_types}
    event_types = []
    for position, et_def in enumerate(definition.event_types):
        et = existing.get(et_def.id) or EventType(key=et_def.id, levels=[])
        et.title = et_def.title
        et.position = position
        et.schema = schema_of(et_def)
        et.schema_version = et_def.schema_version
        old_levels = {lv.key: lv for lv in et.levels}
        levels = []
        for level_position, level_def in enumerate(et_def.levels):
            level = old_levels.get(level_def.id) or Level(key=level_def.id)
            level.title = level_def.title
            level.position = level_position
            levels.append(level)
        et.levels = levels
        event_types.append(et)
    app.title = definition.title
    app.event_types = event_types


def _drop_references(unit: Write, losses: Iterable[_Loss]) -> None:
    now = utcnow()
    for loss in losses:
        row = loss.filter
        if loss.disables:
            row.enabled = False
        row.event_types = loss.kept_types
        row.levels = loss.kept_levels
        row.update_time = now
        unit.record(FILTER, row.id, row.account_id)


async def get_application(database: Database, name: str) -> Application:
    violations = FieldViolations()
    check_text(violations, "name", name, limit=MAX_ID, required=True)
    if violations:
        raise violations
    async with database.read() as session:
        # Only a well-formed name can be registered (and only it may reach the database).
        app = await session.get(Application, name) if NAME_PATTERN.fullmatch(name) else None
    if app is None:
        raise NotFound(f"no application {name!r} is registered")
    return app


async def list_applications(database: Database, page_size: int, page_token: str) -> tuple[list[Application], str]:
    """Every account reads every application: the list is not scoped to one."""
    page = PAGES.page(page_size, page_token)
    async with database.read() as session:
        return await PAGES.fetch(session, select(Application), page)
