"""Filters: references checked, the matching matrix through ResolveRoutes, updates, and what
re-registration does to filters that name a removed event type or level."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from hooks.registry.v1 import endpoints_pb2 as ep_pb
from hooks.registry.v1 import filters_pb2 as pb
from hooks.registry.v1 import routing_pb2 as r_pb
from services.common.identity import identity_metadata
from tests.helpers.registry import expect_error, expect_invalid

ME = identity_metadata("acct-1")


@pytest.fixture
async def catalog(registry):
    await registry.register("policies", "Policies", [("triggered", ["low", "high"]), ("resolved", [])])
    await registry.register("advisor", "Advisor", [("new-rec", ["critical", "moderate"]), ("resolved", [])])
    return registry


async def resolve(registry, application, event_type, level="", account="acct-1") -> dict[str, list[str]]:
    """endpoint name -> the filters that matched it (the dry run's answer, with endpoint summaries)."""
    response = await registry.routing.ResolveRoutes(
        r_pb.ResolveRoutesRequest(
            account_id=account, application=application, event_type=event_type, level=level, with_endpoints=True
        )
    )
    assert response.registered, response.reason
    assert all(route.endpoint_id == route.endpoint.id for route in response.routes)
    return {route.endpoint.name: list(route.filter_ids) for route in response.routes}


async def test_references_must_exist(catalog):
    registry = catalog
    mine = await registry.endpoint("acct-1", "mine")
    theirs = await registry.endpoint("acct-2", "theirs")
    request = pb.Filter(
        applications=["policies", "nope", "policies"],
        event_types=[
            pb.EventTypeRef(application="policies", event_type="ghost"),
            pb.EventTypeRef(application="ghost-app", event_type="x"),
            pb.EventTypeRef(application="policies", event_type="triggered"),
        ],
        levels=[
            pb.LevelRef(application="policies", event_type="triggered", level="medium"),
            pb.LevelRef(application="policies", event_type="resolved", level="low"),
            pb.LevelRef(application="policies", event_type="triggered", level=""),
        ],
        endpoint_ids=[mine.id, theirs.id, "no-such-endpoint"],
        name="n" * 201,
    )
    violations = await expect_invalid(
        registry.filters.CreateFilter(pb.CreateFilterRequest(filter=request), metadata=ME),
        "filter.applications[1]",
        "filter.applications[2]",
        "filter.event_types[0]",
        "filter.event_types[1]",
        "filter.levels[0]",
        "filter.levels[1]",
        "filter.levels[2]",
        "filter.endpoint_ids[1]",
        "filter.endpoint_ids[2]",
        "filter.name",
    )
    assert "filter.event_types[2]" not in violations and "filter.endpoint_ids[0]" not in violations
    assert violations["filter.event_types[0]"] == "application 'policies' has no event type 'ghost'"
    assert "has no level 'medium'" in violations["filter.levels[0]"]
    # Another account's endpoint reads exactly like one that does not exist.
    assert violations["filter.endpoint_ids[1]"] == f"no endpoint {theirs.id!r} in your account"
    assert violations["filter.endpoint_ids[2]"] == "no endpoint 'no-such-endpoint' in your account"
    await expect_invalid(
        registry.filters.CreateFilter(pb.CreateFilterRequest(filter=pb.Filter(enabled=True)), metadata=ME),
        "filter.endpoint_ids",
    )
    listed = await registry.filters.ListFilters(pb.ListFiltersRequest(), metadata=ME)
    assert not listed.filters  # nothing stored by the failed calls


async def test_matching_matrix(catalog):
    registry = catalog
    ep = {
        name: await registry.endpoint("acct-1", name)
        for name in ["all", "app", "et", "lvl", "or", "and", "off", "dead"]
    }
    f_all = await registry.filter("acct-1", [ep["all"].id])
    f_app = await registry.filter("acct-1", [ep["app"].id], applications=["advisor"])
    f_et = await registry.filter("acct-1", [ep["et"].id], event_types=[("policies", "resolved")])
    f_lvl = await registry.filter("acct-1", [ep["lvl"].id], levels=[("policies", "triggered", "high")])
    f_or = await registry.filter(
        "acct-1", [ep["or"].id], levels=[("policies", "triggered", "low"), ("advisor", "new-rec", "critical")]
    )
    await registry.filter(
        "acct-1", [ep["and"].id], applications=["policies"], event_types=[("advisor", "resolved")]
    )  # AND across sets: never matches
    await registry.filter("acct-1", [ep["off"].id], enabled=False)
    f_dead = await registry.filter("acct-1", [ep["dead"].id, ep["all"].id])
    await registry.routing.DisableEndpoint(r_pb.DisableEndpointRequest(endpoint_id=ep["dead"].id, reason="410 Gone"))
    await registry.filter("acct-2", [(await registry.endpoint("acct-2", "other")).id])  # another account

    assert await resolve(registry, "policies", "triggered", "high") == {"all": [f_all.id, f_dead.id], "lvl": [f_lvl.id]}
    assert await resolve(registry, "policies", "triggered", "low") == {"all": [f_all.id, f_dead.id], "or": [f_or.id]}
    assert await resolve(registry, "policies", "resolved") == {"all": [f_all.id, f_dead.id], "et": [f_et.id]}
    assert await resolve(registry, "advisor", "new-rec", "critical") == {
        "all": [f_all.id, f_dead.id],
        "app": [f_app.id],
        "or": [f_or.id],
    }
    assert await resolve(registry, "advisor", "resolved") == {"all": [f_all.id, f_dead.id], "app": [f_app.id]}
    assert await resolve(registry, "policies", "triggered", "high", account="acct-3") == {}

    # One endpoint, several filters: listed once, with every filter that matched.
    f_twice = await registry.filter("acct-1", [ep["lvl"].id], applications=["policies"])
    assert (await resolve(registry, "policies", "triggered", "high"))["lvl"] == [f_lvl.id, f_twice.id]

    # Disabling a filter and re-enabling an endpoint take effect at once.
    await registry.filters.UpdateFilter(
        pb.UpdateFilterRequest(
            filter=pb.Filter(id=f_all.id, enabled=False), update_mask=field_mask_pb2.FieldMask(paths=["enabled"])
        ),
        metadata=ME,
    )
    await registry.endpoints.UpdateEndpoint(
        ep_pb.UpdateEndpointRequest(
            endpoint=ep_pb.Endpoint(id=ep["dead"].id, enabled=True),
            update_mask=field_mask_pb2.FieldMask(paths=["enabled"]),
        ),
        metadata=ME,
    )
    assert await resolve(registry, "advisor", "resolved") == {
        "dead": [f_dead.id],
        "all": [f_dead.id],
        "app": [f_app.id],
    }


async def test_unregistered_events(catalog):
    registry = catalog
    cases = {
        ("nope", "x", ""): "application 'nope' is not registered",
        ("policies", "ghost", ""): "application 'policies' has no event type 'ghost'",
        ("policies", "triggered", ""): "needs a level: one of low, high",
        ("policies", "triggered", "medium"): "has no level 'medium'",
        ("policies", "resolved", "low"): "has no levels",
    }
    for (application, event_type, level), reason in cases.items():
        response = await registry.routing.ResolveRoutes(
            r_pb.ResolveRoutesRequest(account_id="acct-1", application=application, event_type=event_type, level=level)
        )
        assert not response.registered and not response.routes
        assert reason in response.reason
    await expect_invalid(
        registry.routing.ResolveRoutes(r_pb.ResolveRoutesRequest(application="policies")), "account_id", "event_type"
    )


async def test_get_list_update_delete(catalog):
    registry = catalog
    a = await registry.endpoint("acct-1", "a")
    b = await registry.endpoint("acct-1", "b")
    first = await registry.filter("acct-1", [a.id], name="first", applications=["policies"])
    second = await registry.filter("acct-1", [b.id], name="second")
    third = await registry.filter("acct-1", [a.id, b.id], name="third")
    got = (await registry.filters.GetFilter(pb.GetFilterRequest(id=first.id), metadata=ME)).filter
    assert got == first

    names, token = [], ""
    while True:
        page = await registry.filters.ListFilters(pb.ListFiltersRequest(page_size=2, page_token=token), metadata=ME)
        names += [f.name for f in page.filters]
        token = page.next_page_token
        if not token:
            break
    assert names == ["first", "second", "third"]  # oldest first
    by_endpoint = await registry.filters.ListFilters(pb.ListFiltersRequest(endpoint_id=a.id), metadata=ME)
    assert [f.id for f in by_endpoint.filters] == [first.id, third.id]
    await expect_invalid(
        registry.filters.ListFilters(pb.ListFiltersRequest(page_token="bad"), metadata=ME), "page_token"
    )
    await expect_invalid(registry.filters.ListFilters(pb.ListFiltersRequest(page_size=-1), metadata=ME), "page_size")

    updated = (
        await registry.filters.UpdateFilter(
            pb.UpdateFilterRequest(
                filter=pb.Filter(
                    id=first.id,
                    levels=[pb.LevelRef(application="policies", event_type="triggered", level="high")],
                    endpoint_ids=[b.id],
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["levels", "endpoint_ids"]),
            ),
            metadata=ME,
        )
    ).filter
    assert updated.name == "first" and list(updated.applications) == ["policies"]
    assert [lv.level for lv in updated.levels] == ["high"] and list(updated.endpoint_ids) == [b.id]
    # Empty mask: every writable field.
    replaced = (
        await registry.filters.UpdateFilter(
            pb.UpdateFilterRequest(filter=pb.Filter(id=first.id, endpoint_ids=[a.id])), metadata=ME
        )
    ).filter
    assert replaced.name == "" and not replaced.enabled and not replaced.applications and not replaced.levels
    for path in ["bogus", "id", "create_time"]:
        await expect_invalid(
            registry.filters.UpdateFilter(
                pb.UpdateFilterRequest(
                    filter=pb.Filter(id=first.id), update_mask=field_mask_pb2.FieldMask(paths=[path])
                ),
                metadata=ME,
            ),
            "update_mask",
        )
    await expect_invalid(
        registry.filters.UpdateFilter(
            pb.UpdateFilterRequest(
                filter=pb.Filter(id=first.id, endpoint_ids=[]),
                update_mask=field_mask_pb2.FieldMask(paths=["endpoint_ids"]),
            ),
            metadata=ME,
        ),
        "filter.endpoint_ids",
    )
    await registry.filters.DeleteFilter(pb.DeleteFilterRequest(id=second.id), metadata=ME)
    await expect_error(
        registry.filters.GetFilter(pb.GetFilterRequest(id=second.id), metadata=ME), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        registry.filters.DeleteFilter(pb.DeleteFilterRequest(id=second.id), metadata=ME), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(registry.filters.ListFilters(pb.ListFiltersRequest()), grpc.StatusCode.UNAUTHENTICATED)


async def test_removing_event_types_and_levels_cleans_filters(catalog):
    registry = catalog
    endpoint = await registry.endpoint("acct-1", "ops")
    mixed = await registry.filter(
        "acct-1", [endpoint.id], event_types=[("policies", "triggered"), ("policies", "resolved")]
    )
    only_removed = await registry.filter("acct-1", [endpoint.id], event_types=[("policies", "resolved")])
    levels = await registry.filter(
        "acct-1", [endpoint.id], levels=[("policies", "triggered", "low"), ("policies", "triggered", "high")]
    )
    only_low = await registry.filter("acct-1", [endpoint.id], levels=[("policies", "triggered", "low")])
    untouched = await registry.filter("acct-1", [endpoint.id], applications=["advisor"])

    # `resolved` and level `low` go away (which filters use: the removal must be allowed).
    await registry.register("policies", "Policies", [("triggered", ["high"])], allow_removals=True)

    async def get(f):
        return (await registry.filters.GetFilter(pb.GetFilterRequest(id=f.id), metadata=ME)).filter

    assert [(e.application, e.event_type) for e in (await get(mixed)).event_types] == [("policies", "triggered")]
    assert (await get(mixed)).enabled
    # A set emptied by the removal would match everything: the filter is disabled instead.
    assert not (await get(only_removed)).event_types and not (await get(only_removed)).enabled
    assert [lv.level for lv in (await get(levels)).levels] == ["high"] and (await get(levels)).enabled
    assert not (await get(only_low)).levels and not (await get(only_low)).enabled
    assert (await get(untouched)) == untouched
    assert await resolve(registry, "policies", "triggered", "high") == {"ops": [mixed.id, levels.id]}
