"""Registering applications: the seed's semantics.

A registration is the whole definition. The name is the identity (immutable; re-registering the
same name updates it, there is no rename); the title may change; event types and levels are
added, changed (title, order) and removed to match the document, order kept.

Filters that reference a removed event type or level lose that reference in the same transaction,
and each such filter is logged as changed. A filter whose event-type or level set becomes empty
that way is also disabled: an empty set matches everything, so leaving it enabled would widen
what the filter sends instead of narrowing it. Its owner can see it disabled and fix it.
"""

from __future__ import annotations

from sqlalchemy import select, tuple_

from hooks.registry.v1 import applications_pb2
from services.registry.database import APPLICATION, FILTER, Database, Write
from services.registry.models import Application, EventType, Filter, FilterEventType, FilterLevel, Level, utcnow
from services.registry.page_tokens import decode_page_token, encode_page_token, page_size_of
from services.registry.problems import FailedPrecondition, NotFound, raise_if
from services.registry.validation import check_application

BUILTIN_NAME = "hooks"
#: hooks' own events, published by the sender; registered at every start.
BUILTIN_APPLICATION = applications_pb2.Application(
    name=BUILTIN_NAME,
    title="Hooks",
    event_types=[
        applications_pb2.EventType(id="endpoint-disabled", title="Endpoint disabled"),
        applications_pb2.EventType(id="test", title="Test"),
    ],
)


def _document(app: Application) -> tuple:
    return (
        app.title,
        tuple((et.key, et.title, tuple((lv.key, lv.title) for lv in et.levels)) for et in app.event_types),
    )


async def register_application(
    database: Database, definition: applications_pb2.Application, *, builtin: bool = False
) -> tuple[Application, bool]:
    """Creates or updates the application to match `definition`; returns (it, created)."""
    raise_if(check_application(definition))
    if definition.name == BUILTIN_NAME and not builtin:
        raise FailedPrecondition(
            f"application {BUILTIN_NAME!r} is hooks' own and registered by the registry itself; choose another name"
        )
    async with database.write() as unit:
        session = unit.session
        app = await session.get(Application, definition.name)
        created = app is None
        if created:
            app = Application(name=definition.name, title=definition.title, event_types=[])
            session.add(app)
            before = None
        else:
            before = _document(app)
        existing = {et.key: et for et in app.event_types}
        wanted_types = {et.id for et in definition.event_types}
        removed_types = [key for key in existing if key not in wanted_types]
        removed_levels: list[tuple[str, str, str]] = []
        event_types = []
        for position, et_def in enumerate(definition.event_types):
            et = existing.get(et_def.id) or EventType(key=et_def.id, levels=[])
            et.title = et_def.title
            et.position = position
            old_levels = {lv.key: lv for lv in et.levels}
            wanted_levels = {lv.id for lv in et_def.levels}
            removed_levels += [(app.name, et.key, key) for key in old_levels if key not in wanted_levels]
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
        if created or _document(app) != before:
            app.update_time = utcnow()
            unit.record(APPLICATION, app.name)
            if not created:
                await _drop_stale_references(unit, app.name, removed_types, removed_levels)
        await session.flush()
    return app, created


async def _drop_stale_references(
    unit: Write, application: str, removed_types: list[str], removed_levels: list[tuple[str, str, str]]
) -> None:
    session = unit.session
    filter_ids: set[str] = set()
    if removed_types:
        filter_ids.update(
            (
                await session.execute(
                    select(FilterEventType.filter_id).where(
                        FilterEventType.application == application, FilterEventType.event_type.in_(removed_types)
                    )
                )
            ).scalars()
        )
        filter_ids.update(
            (
                await session.execute(
                    select(FilterLevel.filter_id).where(
                        FilterLevel.application == application, FilterLevel.event_type.in_(removed_types)
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
        return
    gone_types = {(application, key) for key in removed_types}
    gone_levels = set(removed_levels)
    now = utcnow()
    for row in (await session.execute(select(Filter).where(Filter.id.in_(filter_ids)))).scalars():
        kept_types = [e for e in row.event_types if (e.application, e.event_type) not in gone_types]
        kept_levels = [
            lv
            for lv in row.levels
            if (lv.application, lv.event_type) not in gone_types and (lv.application, lv.event_type, lv.level) not in gone_levels
        ]
        if (row.event_types and not kept_types) or (row.levels and not kept_levels):
            row.enabled = False
        row.event_types = kept_types
        row.levels = kept_levels
        row.update_time = now
        unit.record(FILTER, row.id, row.account_id)


async def get_application(database: Database, name: str) -> Application:
    async with database.read() as session:
        app = await session.get(Application, name)
    if app is None:
        raise NotFound(f"no application {name!r} is registered")
    return app


async def list_applications(database: Database, page_size: int, page_token: str) -> tuple[list[Application], str]:
    size = page_size_of(page_size)
    query = {"list": "applications"}
    after = decode_page_token(page_token, query)
    statement = select(Application).order_by(Application.name).limit(size + 1)
    if after:
        statement = statement.where(Application.name > str(after[0]))
    async with database.read() as session:
        rows = list((await session.execute(statement)).scalars())
    next_token = ""
    if len(rows) > size:
        rows = rows[:size]
        next_token = encode_page_token([rows[-1].name], query)
    return rows, next_token
