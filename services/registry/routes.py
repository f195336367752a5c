"""ResolveRoutes' hot path: the catalog of registered applications and, per account, a routing
table of its filters and the ids of its enabled endpoints, both kept in memory.

A route names its endpoint by id only, so neither the tables nor the answer grow with what an
endpoint holds (headers, CA certificates): the matcher needs ids, and the sender reads the rest
with GetDeliveryTarget. Only the dry run asks `with_endpoints`, and then the summaries (no secret,
headers or CA certificate) are read from the database for the endpoints matched. Likewise the answer
carries the event type's `schema_version` (from the catalog), and its JSON Schema only when asked
`with_schema` (the matcher does once per version it has not compiled).

The tables are an LRU of at most `max_accounts` accounts (the least recently used is dropped), and
tenant quotas (services.registry.quotas) bound each one.

Entries are dropped when the change log says what they depend on changed: at once for writes of
this process, and within a poll (or a NOTIFY on PostgreSQL) for writes of other replicas. A table
loaded while a change to its account was being committed is not kept, so a stale table can never
outlive the change that made it stale. Misses are loaded in batches (one set of queries for every
account missed at the same moment), so a cold start costs few round trips.
"""

from __future__ import annotations

import asyncio
import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import CompoundSelect, Select, String, bindparam, cast, literal, null, select, union_all

from hooks.registry.v1 import routing_pb2
from services.registry.database import APPLICATION, ENDPOINT, FILTER, ChangeNote, Database
from services.registry.messages import SUMMARY_COLUMNS, endpoint_summary
from services.registry.models import (
    Application,
    Base,
    Endpoint,
    Filter,
    FilterApplication,
    FilterEndpoint,
    FilterEventType,
    FilterLevel,
)


class RowKind(enum.StrEnum):
    """What a row of FILTER_ROWS is: the filter itself, or one entry of its sets or endpoint list."""

    FILTER = "filter"
    APPLICATION = "application"
    EVENT_TYPE = "event_type"
    LEVEL = "level"
    ENDPOINT = "endpoint"


#: The columns of FILTER_ROWS beside account_id, filter_id, kind and create_time: a row of each kind
#: fills those of its own table, the rest are NULL (of the column's type, which the UNION needs on
#: PostgreSQL).
_ENTRY_COLUMNS = {
    "application": FilterLevel.application,
    "event_type": FilterLevel.event_type,
    "level": FilterLevel.level,
    "endpoint_id": FilterEndpoint.endpoint_id,
    "position": FilterEndpoint.position,
}


def _filter_rows() -> CompoundSelect:
    """The enabled filters of the accounts `accounts` (an expanding parameter), oldest first, each
    with the entries of its sets and endpoint list, in one round trip: a UNION of one SELECT per
    table, whose rows say their `kind` and name their columns."""
    enabled = (
        select(Filter.account_id, Filter.id, Filter.create_time)
        .where(Filter.account_id.in_(bindparam("accounts", expanding=True)), Filter.enabled.is_(True))
        .cte("f")
    )

    def rows(kind: RowKind, entries: type[Base] | None, filter_id: Any, **columns: Any) -> Select:
        """The rows of `kind`: of the table of `entries` joined to their filter's (None: the
        filters' own), with `columns` (the rest NULL)."""
        statement = select(
            enabled.c.account_id,
            filter_id.label("filter_id"),
            literal(kind.value, String, literal_execute=True).label("kind"),
            *(columns.get(name, cast(null(), column.type)).label(name) for name, column in _ENTRY_COLUMNS.items()),
            enabled.c.create_time,
        )
        if entries is None:
            return statement
        return statement.join_from(entries, enabled, enabled.c.id == filter_id)

    union = union_all(
        rows(RowKind.FILTER, None, enabled.c.id),
        rows(
            RowKind.APPLICATION,
            FilterApplication,
            FilterApplication.filter_id,
            application=FilterApplication.application,
        ),
        rows(
            RowKind.EVENT_TYPE,
            FilterEventType,
            FilterEventType.filter_id,
            application=FilterEventType.application,
            event_type=FilterEventType.event_type,
        ),
        rows(
            RowKind.LEVEL,
            FilterLevel,
            FilterLevel.filter_id,
            application=FilterLevel.application,
            event_type=FilterLevel.event_type,
            level=FilterLevel.level,
        ),
        rows(
            RowKind.ENDPOINT,
            FilterEndpoint,
            FilterEndpoint.filter_id,
            endpoint_id=FilterEndpoint.endpoint_id,
            position=FilterEndpoint.position,
        ),
    )
    return union.order_by(union.selected_columns.create_time, union.selected_columns.filter_id)


#: Built once from the models (SQLAlchemy caches its compiled form per dialect).
FILTER_ROWS = _filter_rows()
#: At most this many accounts are loaded by one batch of queries.
LOAD_BATCH = 200


@dataclass(frozen=True)
class CatalogEntry:
    #: event type id -> its level ids (empty when it has none)
    event_types: dict[str, frozenset[str]]
    level_order: dict[str, tuple[str, ...]]
    #: event type id -> (its schema_version, its JSON Schema), for the event types that have one
    schemas: dict[str, tuple[str, dict]]


@dataclass(frozen=True)
class FilterRule:
    id: str
    applications: frozenset[str]
    event_types: frozenset[tuple[str, str]]
    levels: frozenset[tuple[str, str, str]]
    endpoint_ids: tuple[str, ...]

    def matches(self, application: str, event_type: str, level: str) -> bool:
        return (
            (not self.applications or application in self.applications)
            and (not self.event_types or (application, event_type) in self.event_types)
            and (not self.levels or (application, event_type, level) in self.levels)
        )


@dataclass
class _RuleEntries:
    """A filter's entries as FILTER_ROWS returns them, while a load collects them."""

    applications: set[str] = field(default_factory=set)
    event_types: set[tuple[str, str]] = field(default_factory=set)
    levels: set[tuple[str, str, str]] = field(default_factory=set)
    #: (position, endpoint id)
    endpoints: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class RoutingTable:
    """An account's enabled filters (oldest first) and the ids of its enabled endpoints."""

    rules: tuple[FilterRule, ...]
    endpoint_ids: frozenset[str]


class RouteResolver:
    def __init__(self, database: Database, max_accounts: int):
        self.database = database
        self.max_accounts = max_accounts
        self._catalog: dict[str, CatalogEntry] | None = None
        self._tables: OrderedDict[str, RoutingTable] = OrderedDict()
        self._catalog_generation = 0
        #: Accounts changed since the current load began (loads run one at a time).
        self._changed_while_loading: set[str] = set()
        self._loading: dict[str, asyncio.Future] = {}
        self._batch: list[tuple[str, asyncio.Future]] = []
        self._batch_task: asyncio.Task | None = None

    def cached_accounts(self) -> list[str]:
        """The accounts whose routing tables are held, least recently used first (the next dropped)."""
        return list(self._tables)

    # ---- invalidation

    def changed(self, changes: list[ChangeNote]) -> None:
        for change in changes:
            if change.kind == APPLICATION:
                self._catalog_generation += 1
                self._catalog = None
            elif change.kind in (ENDPOINT, FILTER):
                self._tables.pop(change.account_id, None)
                # A load under way may have read the account before the change: it must not
                # cache what it read, and later calls load afresh.
                self._changed_while_loading.add(change.account_id)
                self._loading.pop(change.account_id, None)

    # ---- loading

    async def catalog(self) -> dict[str, CatalogEntry]:
        catalog = self._catalog
        if catalog is not None:
            return catalog
        generation = self._catalog_generation
        async with self.database.read() as session:
            applications = (await session.execute(select(Application))).scalars().all()
            catalog = {
                app.name: CatalogEntry(
                    event_types={et.key: frozenset(level.key for level in et.levels) for et in app.event_types},
                    level_order={et.key: tuple(level.key for level in et.levels) for et in app.event_types},
                    schemas={et.key: (et.schema_version, et.schema) for et in app.event_types if et.schema is not None},
                )
                for app in applications
            }
        if generation == self._catalog_generation:
            self._catalog = catalog
        return catalog

    async def table(self, account_id: str) -> RoutingTable:
        table = self._tables.get(account_id)
        if table is not None:
            self._tables.move_to_end(account_id)
            return table
        # Misses are batched: every account missed in the same turn of the event loop (and any
        # concurrent call for the same account) shares one load of a few queries.
        loading = self._loading.get(account_id)
        if loading is None:
            loading = self._loading[account_id] = asyncio.get_running_loop().create_future()
            self._batch.append((account_id, loading))
            if self._batch_task is None:
                self._batch_task = asyncio.create_task(self._load_batches())
        return await asyncio.shield(loading)

    async def _load_batches(self) -> None:
        try:
            while self._batch:
                await asyncio.sleep(0)  # let the other calls of this turn join the batch
                batch, self._batch = self._batch[:LOAD_BATCH], self._batch[LOAD_BATCH:]
                try:
                    tables = await self._load([account_id for account_id, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                    for account_id, future in batch:
                        self._settle(account_id, future, exception=exc)
                    continue
                for account_id, future in batch:
                    self._settle(account_id, future, result=tables[account_id])
        finally:
            self._batch_task = None
            for account_id, future in self._batch:  # cancelled: leave no waiter hanging
                if self._loading.get(account_id) is future:
                    del self._loading[account_id]
                future.cancel()
            self._batch = []

    def _settle(
        self,
        account_id: str,
        future: asyncio.Future,
        result: RoutingTable | None = None,
        exception: BaseException | None = None,
    ) -> None:
        if self._loading.get(account_id) is future:
            del self._loading[account_id]
        if future.done():
            return
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)

    async def _load(self, accounts: list[str]) -> dict[str, RoutingTable]:
        self._changed_while_loading.clear()
        rules: dict[str, dict[str, _RuleEntries]] = {account_id: {} for account_id in accounts}
        endpoints: dict[str, set[str]] = {account_id: set() for account_id in accounts}
        async with self.database.engine.connect() as connection:
            for row in await connection.execute(FILTER_ROWS, {"accounts": accounts}):
                entries = rules[row.account_id].setdefault(row.filter_id, _RuleEntries())
                if row.kind == RowKind.APPLICATION:
                    entries.applications.add(row.application)
                elif row.kind == RowKind.EVENT_TYPE:
                    entries.event_types.add((row.application, row.event_type))
                elif row.kind == RowKind.LEVEL:
                    entries.levels.add((row.application, row.event_type, row.level))
                elif row.kind == RowKind.ENDPOINT:
                    entries.endpoints.append((row.position, row.endpoint_id))
            for account_id, endpoint_id in await connection.execute(
                select(Endpoint.account_id, Endpoint.id).where(
                    Endpoint.account_id.in_(accounts), Endpoint.enabled.is_(True)
                )
            ):
                endpoints[account_id].add(endpoint_id)
        tables = {
            account_id: RoutingTable(
                rules=tuple(
                    FilterRule(
                        id=filter_id,
                        applications=frozenset(entries.applications),
                        event_types=frozenset(entries.event_types),
                        levels=frozenset(entries.levels),
                        endpoint_ids=tuple(endpoint_id for _, endpoint_id in sorted(entries.endpoints)),
                    )
                    for filter_id, entries in rules[account_id].items()
                ),
                endpoint_ids=frozenset(endpoints[account_id]),
            )
            for account_id in accounts
        }
        for account_id, table in tables.items():
            if account_id not in self._changed_while_loading:
                self._tables[account_id] = table
                self._tables.move_to_end(account_id)
        while len(self._tables) > self.max_accounts:
            self._tables.popitem(last=False)
        return tables

    # ---- resolving

    @staticmethod
    def unregistered(
        catalog: dict[str, CatalogEntry], application: str, event_type: str, level: str
    ) -> tuple[routing_pb2.Unregistered, str]:
        """Which part of the triple is not registered in `catalog` (routing_pb2.Unregistered) and why,
        or (UNREGISTERED_UNSPECIFIED, "") when it is registered."""
        entry = catalog.get(application)
        if entry is None:
            return routing_pb2.UNREGISTERED_APPLICATION, f"application {application!r} is not registered"
        levels = entry.event_types.get(event_type)
        if levels is None:
            return routing_pb2.UNREGISTERED_EVENT_TYPE, f"application {application!r} has no event type {event_type!r}"
        if not levels:
            if level:
                return (
                    routing_pb2.UNREGISTERED_LEVEL,
                    f"event type {event_type!r} of application {application!r} has no levels, so level must be empty (got {level!r})",
                )
            return routing_pb2.UNREGISTERED_UNSPECIFIED, ""
        if level not in levels:
            allowed = ", ".join(entry.level_order[event_type])
            if not level:
                return (
                    routing_pb2.UNREGISTERED_LEVEL,
                    f"event type {event_type!r} of application {application!r} needs a level: one of {allowed}",
                )
            return (
                routing_pb2.UNREGISTERED_LEVEL,
                f"event type {event_type!r} of application {application!r} has no level {level!r} (levels: {allowed})",
            )
        return routing_pb2.UNREGISTERED_UNSPECIFIED, ""

    async def resolve(
        self,
        account_id: str,
        application: str,
        event_type: str,
        level: str,
        *,
        with_endpoints: bool = False,
        with_schema: bool = False,
    ) -> routing_pb2.ResolveRoutesResponse:
        """The routes of an event: each enabled endpoint of the matching enabled filters once, by
        id, with the filters that matched it; with `with_endpoints`, each with its summary too. The
        event type's schema_version always, its schema with `with_schema`."""
        catalog = await self.catalog()
        unregistered, reason = self.unregistered(catalog, application, event_type, level)
        if reason:
            return routing_pb2.ResolveRoutesResponse(registered=False, reason=reason, unregistered=unregistered)
        answer = routing_pb2.ResolveRoutesResponse(registered=True)
        schemas = catalog[application].schemas
        if event_type in schemas:
            version, schema = schemas[event_type]
            answer.schema_version = version
            if with_schema:
                answer.schema.update(schema)
        table = await self.table(account_id)
        routes: dict[str, routing_pb2.Route] = {}
        for rule in table.rules:
            if not rule.matches(application, event_type, level):
                continue
            for endpoint_id in rule.endpoint_ids:
                if endpoint_id not in table.endpoint_ids:  # disabled
                    continue
                route = routes.get(endpoint_id)
                if route is None:
                    route = routes[endpoint_id] = routing_pb2.Route(endpoint_id=endpoint_id)
                if rule.id not in route.filter_ids:
                    route.filter_ids.append(rule.id)
        if with_endpoints and routes:
            await self._fill_summaries(account_id, routes)
        answer.routes.extend(routes.values())
        return answer

    async def _fill_summaries(self, account_id: str, routes: dict[str, routing_pb2.Route]) -> None:
        async with self.database.engine.connect() as connection:
            rows = await connection.execute(
                select(*SUMMARY_COLUMNS).where(Endpoint.account_id == account_id, Endpoint.id.in_(list(routes)))
            )
            for row in rows:
                routes[row.id].endpoint.CopyFrom(endpoint_summary(row))
