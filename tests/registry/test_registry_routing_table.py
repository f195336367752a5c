"""The routing tables' one query (services/registry/routes.py, FILTER_ROWS, built from the models),
on SQLite and on PostgreSQL: every kind of a filter's entries comes back in its own named column,
endpoints in their filter's order, for every account of a batch."""

from __future__ import annotations

import asyncio

from services.registry.database import Database
from services.registry.routes import FilterRule, RouteResolver, RoutingTable
from tests.helpers.registry import Registry


async def test_a_batch_loads_every_entry_of_every_enabled_filter(registry: Registry, database_url):
    await registry.register("policies", event_types=[("triggered", ["low", "high"]), ("resolved", [])])
    first, second, third = [await registry.endpoint("acct-1", name) for name in ("first", "second", "third")]
    other = await registry.endpoint("acct-2", "other")
    # Endpoints listed out of id order: the table keeps the filter's order.
    listed = sorted([first, second, third], key=lambda e: e.id, reverse=True)
    everything = await registry.filter(
        "acct-1",
        [e.id for e in listed],
        applications=["policies"],
        event_types=[("policies", "triggered")],
        levels=[("policies", "triggered", "high"), ("policies", "triggered", "low")],
    )
    bare = await registry.filter("acct-1", [first.id])
    await registry.filter("acct-1", [second.id], enabled=False)
    elsewhere = await registry.filter("acct-2", [other.id], event_types=[("policies", "resolved")])

    database = Database(database_url)
    try:
        resolver = RouteResolver(database, max_accounts=10)
        tables = await asyncio.gather(*(resolver.table(account) for account in ("acct-1", "acct-2", "nobody")))
    finally:
        await database.dispose()

    assert tables == [
        RoutingTable(
            rules=(
                FilterRule(
                    id=everything.id,
                    applications=frozenset({"policies"}),
                    event_types=frozenset({("policies", "triggered")}),
                    levels=frozenset({("policies", "triggered", "high"), ("policies", "triggered", "low")}),
                    endpoint_ids=tuple(e.id for e in listed),
                ),
                FilterRule(bare.id, frozenset(), frozenset(), frozenset(), (first.id,)),
            ),
            endpoint_ids=frozenset({first.id, second.id, third.id}),
        ),
        RoutingTable(
            rules=(
                FilterRule(elsewhere.id, frozenset(), frozenset({("policies", "resolved")}), frozenset(), (other.id,)),
            ),
            endpoint_ids=frozenset({other.id}),
        ),
        RoutingTable(rules=(), endpoint_ids=frozenset()),
    ]
