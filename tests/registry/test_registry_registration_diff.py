"""Registration that cannot destroy by accident, and event-type JSON Schemas, over a real channel:
the answer's diff, dry runs that change nothing, removals of what filters use refused unless allowed,
idempotent re-registration, schemas checked, stored and read back; and hooks_client.register()."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from hooks.registry.v1 import applications_pb2 as pb
from hooks.registry.v1 import filters_pb2 as f_pb
from hooks.registry.v1 import routing_pb2 as r_pb
from hooks_client import InvalidRegistration, RemovalsRefused, register
from hooks_client.registration import schema_version
from services.common.identity import identity_metadata
from tests.helpers.registry import expect_error, expect_invalid

ME = identity_metadata("acct-1")
ORDER_SCHEMA = {
    "type": "object",
    "required": ["order_id"],
    "properties": {"order_id": {"type": "string", "maxLength": 40}},
}


def app(event_types, title="Shop", schemas=None) -> pb.Application:
    """event_types: [(id, [level ids])]; schemas: {event type id: schema}."""
    message = pb.Application(name="shop", title=title)
    for et_id, levels in event_types:
        et = message.event_types.add(
            id=et_id, title=et_id.title(), levels=[pb.Level(id=lv, title=lv.title()) for lv in levels]
        )
        if schemas and et_id in schemas:
            et.schema.update(schemas[et_id])
    return message


async def call(registry, definition, **flags) -> pb.RegisterApplicationResponse:
    return await registry.apps.RegisterApplication(pb.RegisterApplicationRequest(application=definition, **flags))


async def stored(registry) -> pb.Application:
    return (await registry.apps.GetApplication(pb.GetApplicationRequest(name="shop"), metadata=ME)).application


def changes(diff) -> set[tuple]:
    kinds = {pb.CHANGE_KIND_ADDED: "added", pb.CHANGE_KIND_CHANGED: "changed", pb.CHANGE_KIND_REMOVED: "removed"}
    return {("type", c.event_type, kinds[c.kind], *c.fields) for c in diff.event_types} | {
        ("level", c.event_type, c.level, kinds[c.kind], *c.fields) for c in diff.levels
    }


async def test_the_diff_says_what_changes_and_the_same_definition_again_changes_nothing(registry):
    first = await call(registry, app([("placed", ["big", "small"]), ("shipped", [])]))
    assert first.created and changes(first.diff) == {("type", "placed", "added"), ("type", "shipped", "added")}

    same = await call(registry, app([("placed", ["big", "small"]), ("shipped", [])]))
    assert not same.created and same.diff.unchanged and not changes(same.diff)

    second = pb.Application(name="shop", title="Shop 2")
    second.event_types.add(id="shipped", title="Sent")
    second.event_types.add(
        id="placed",
        title="Placed",
        levels=[pb.Level(id="small", title="Tiny"), pb.Level(id="big", title="Big"), pb.Level(id="huge", title="Huge")],
    )
    second.event_types.add(id="returned", title="Returned")
    answer = await call(registry, second)
    assert answer.diff.previous_title == "Shop" and answer.diff.event_types_reordered and not answer.diff.unchanged
    assert changes(answer.diff) == {
        ("type", "shipped", "changed", "title"),
        ("type", "placed", "changed", "levels_order"),
        ("type", "returned", "added"),
        ("level", "placed", "small", "changed", "title"),
        ("level", "placed", "huge", "added"),
    }
    assert answer.diff.filters_losing_references == 0
    assert [et.id for et in (await stored(registry)).event_types] == ["shipped", "placed", "returned"]


async def test_a_dry_run_changes_nothing_and_counts_what_filters_would_lose(registry):
    await call(registry, app([("placed", ["big", "small"]), ("shipped", [])]))
    endpoint = await registry.endpoint("acct-1", "ops")
    other = await registry.endpoint("acct-2", "ops")
    only_shipped = await registry.filter("acct-1", [endpoint.id], event_types=[("shop", "shipped")])
    small = await registry.filter("acct-2", [other.id], levels=[("shop", "placed", "small"), ("shop", "placed", "big")])
    before = await stored(registry)

    dry = await call(registry, app([("placed", ["big"])]), dry_run=True)
    assert changes(dry.diff) == {("type", "shipped", "removed"), ("level", "placed", "small", "removed")}
    assert (dry.diff.filters_losing_references, dry.diff.filters_disabled, dry.diff.accounts) == (2, 1, 2)
    assert [et.id for et in dry.application.event_types] == ["placed"]  # as it would be
    assert await stored(registry) == before
    assert (
        await registry.filters.GetFilter(f_pb.GetFilterRequest(id=only_shipped.id), metadata=ME)
    ).filter == only_shipped

    # For real, without allowing removals: refused, naming what would be lost, nothing changed.
    refused = await expect_error(call(registry, app([("placed", ["big"])])), grpc.StatusCode.FAILED_PRECONDITION)
    assert "'shipped'" in refused.details() and "2 filter(s) of 2 account(s)" in refused.details()
    status = rpc_status.from_call(refused)
    failure = error_details_pb2.PreconditionFailure()
    assert status.details[0].Unpack(failure)
    assert {v.subject for v in failure.violations} == {"event_types/shipped", "event_types/placed/levels/small"}
    assert await stored(registry) == before

    allowed = await call(registry, app([("placed", ["big"])]), allow_removals=True)
    assert (allowed.diff.filters_losing_references, allowed.diff.filters_disabled) == (2, 1)
    after = (await registry.filters.GetFilter(f_pb.GetFilterRequest(id=only_shipped.id), metadata=ME)).filter
    assert not after.enabled and not after.event_types
    kept = (
        await registry.filters.GetFilter(f_pb.GetFilterRequest(id=small.id), metadata=identity_metadata("acct-2"))
    ).filter
    assert kept.enabled and [lv.level for lv in kept.levels] == ["big"]


async def test_removing_what_no_filter_uses_needs_no_permission(registry):
    await call(registry, app([("placed", ["big"]), ("shipped", [])]))
    answer = await call(registry, app([("placed", [])]))
    assert changes(answer.diff) == {("type", "shipped", "removed"), ("level", "placed", "big", "removed")}


async def test_schemas_are_checked_stored_versioned_and_read_back(registry):
    answer = await call(registry, app([("placed", []), ("shipped", [])], schemas={"placed": ORDER_SCHEMA}))
    placed = answer.application.event_types[0]
    assert placed.schema_version == schema_version(json_format.MessageToDict(placed.schema))
    got = (await stored(registry)).event_types
    assert json_format.MessageToDict(got[0].schema)["required"] == ["order_id"]
    assert got[0].schema_version and not got[1].schema_version and not got[1].HasField("schema")
    listed = (await registry.apps.ListApplications(pb.ListApplicationsRequest(), metadata=ME)).applications
    shop = next(a for a in listed if a.name == "shop")
    assert shop.event_types[0].schema_version == got[0].schema_version and not shop.event_types[0].HasField("schema")

    same = await call(registry, app([("placed", []), ("shipped", [])], schemas={"placed": ORDER_SCHEMA}))
    assert same.diff.unchanged
    looser = {**ORDER_SCHEMA, "required": []}
    changed = await call(registry, app([("placed", []), ("shipped", [])], schemas={"placed": looser}))
    assert changes(changed.diff) == {("type", "placed", "changed", "schema")}
    assert (await stored(registry)).event_types[0].schema_version != got[0].schema_version


async def test_resolve_routes_names_the_schema_version_and_answers_the_schema_when_asked(registry):
    """What the matcher checks messages with: the version in every answer, the schema only on request,
    the new version at once after a registration changes the schema."""
    await call(registry, app([("placed", []), ("shipped", [])], schemas={"placed": ORDER_SCHEMA}))
    question = {"account_id": "acct-1", "application": "shop", "level": ""}
    placed = await registry.routing.ResolveRoutes(r_pb.ResolveRoutesRequest(event_type="placed", **question))
    assert placed.schema_version == (await stored(registry)).event_types[0].schema_version
    assert placed.schema_version and not placed.HasField("schema")
    asked = await registry.routing.ResolveRoutes(
        r_pb.ResolveRoutesRequest(event_type="placed", with_schema=True, **question)
    )
    assert asked.schema_version == placed.schema_version and json_format.MessageToDict(asked.schema) == ORDER_SCHEMA
    shipped = await registry.routing.ResolveRoutes(
        r_pb.ResolveRoutesRequest(event_type="shipped", with_schema=True, **question)
    )
    assert shipped.schema_version == "" and not shipped.HasField("schema")

    looser = {**ORDER_SCHEMA, "required": []}
    await call(registry, app([("placed", []), ("shipped", [])], schemas={"placed": looser}))
    again = await registry.routing.ResolveRoutes(
        r_pb.ResolveRoutesRequest(event_type="placed", with_schema=True, **question)
    )
    assert again.schema_version == (await stored(registry)).event_types[0].schema_version != placed.schema_version
    assert json_format.MessageToDict(again.schema) == looser


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": "objekt"}, "is not a valid JSON Schema"),
        (
            {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"},
            "only https://json-schema.org/draft/2020-12/schema",
        ),
        ({"description": "x" * (70 * 1024)}, "more than the limit of 65536"),
        # Valid in shape, but the matcher could not apply them: refused now, not at every message.
        ({"$ref": "#/$defs/missing"}, "cannot be applied to messages: Pointer '/$defs/missing' does not exist"),
        # A remote $ref is never fetched (by the registry or the matcher): no request goes out for it.
        (
            {"$ref": "http://127.0.0.1:9/schema.json"},
            "is not fetched: a schema's $ref may only point inside the schema",
        ),
    ],
)
async def test_a_bad_schema_is_refused_naming_the_event_type(registry, schema, says):
    violations = await expect_invalid(
        call(registry, app([("placed", []), ("shipped", [])], schemas={"shipped": schema})),
        "application.event_types[1].schema",
    )
    assert says in violations["application.event_types[1].schema"]
    await expect_error(
        registry.apps.GetApplication(pb.GetApplicationRequest(name="shop"), metadata=ME), grpc.StatusCode.NOT_FOUND
    )


async def test_hooks_client_register_is_idempotent_and_refuses_removals(registry, tmp_path):
    document = tmp_path / "shop.yaml"
    document.write_text(
        "application: {name: shop, title: Shop}\n"
        "event_types:\n"
        "  - {id: placed, title: Placed, levels: [{id: big, title: Big}], schema: {type: object}}\n"
        "  - {id: shipped, title: Shipped}\n"
    )
    first = await asyncio.to_thread(register, document, target=registry.target)
    assert first.created and first.changed
    again = await asyncio.to_thread(register, document, target=registry.target)
    assert not again.changed and again.summary() == ["no change: the registered definition is already this one"]

    endpoint = await registry.endpoint("acct-1", "ops")
    await registry.filter("acct-1", [endpoint.id], event_types=[("shop", "shipped")])
    smaller = {"application": {"name": "shop", "title": "Shop"}, "event_types": [{"id": "placed", "title": "Placed"}]}
    dry = await asyncio.to_thread(register, smaller, target=registry.target, dry_run=True)
    assert "event type 'shipped' would be removed" in dry.summary()
    with pytest.raises(RemovalsRefused) as refused:
        await asyncio.to_thread(register, smaller, target=registry.target)
    assert refused.value.removed == ["event_types/shipped"]
    assert [et.id for et in (await stored(registry)).event_types] == ["placed", "shipped"]
    done = await asyncio.to_thread(register, smaller, target=registry.target, allow_removals=True)
    assert done.diff.filters_disabled == 1

    with pytest.raises(InvalidRegistration) as invalid:
        await asyncio.to_thread(register, {**smaller, "event_type": []}, target=registry.target)
    assert invalid.value.problems == [("event_type", "unknown key; did you mean 'event_types'?")]
