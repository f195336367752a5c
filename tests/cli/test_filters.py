"""`hooks filters ...` against the whole system through its gateway, as an account admin uses them: say which
events go to an endpoint, see it happen, change one set without touching the others, delete the filter;
and what a mistake gets (which field, why)."""

from __future__ import annotations

import json

import pytest
from google.protobuf import struct_pb2

from hooks.matcher.v1 import matcher_pb2
from hooks.registry.v1 import applications_pb2
from services.common.identity import identity_metadata
from tests.helpers import cli
from tests.helpers.registry import policies
from tests.helpers.stack import running_stack
from tests.helpers.waiting import eventually

SHOP = applications_pb2.Application(
    name="shop",
    title="Shop",
    event_types=[
        applications_pb2.EventType(id="placed", title="Placed"),
        applications_pb2.EventType(id="cancelled", title="Cancelled"),
    ],
)
ACCOUNT = "acct-filters"


@pytest.fixture
async def stack(sqlite_url, kafka, topics):
    async with running_stack(sqlite_url, kafka.bootstrap_servers, topics) as running:
        await running.register(SHOP)
        await running.register(policies("high", "low"))
        yield running


async def run(stack, *args: str) -> str:
    return await cli.run(stack, "filters", *args, account=ACCOUNT)


async def run_json(stack, *args: str) -> dict:
    return json.loads(await run(stack, *args, "--json"))


async def publish(stack, event_type: str, number: int) -> None:
    await stack.publish(
        matcher_pb2.PublishMessageRequest(
            application="shop", event_type=event_type, message=struct_pb2.Value(number_value=number)
        ),
        identity_metadata(ACCOUNT),
    )


async def test_an_admin_routes_events_with_a_filter_changes_one_set_and_deletes_it(stack):
    endpoint = json.loads(
        await cli.run(
            stack,
            *("endpoints", "create", "webhook", "--name", "orders", "--target", stack.receiver.url("/orders")),
            "--json",
            account=ACCOUNT,
        )
    )
    text = await run(
        stack, "create", "--name", "orders placed", "--event-type", "shop/placed", "--endpoint", endpoint["id"]
    )
    assert text.startswith("created filter ") and text.strip().endswith("(event types: shop/placed), enabled")
    filter_id = text.split()[2]

    await publish(stack, "cancelled", 1)  # not matched: never delivered
    await publish(stack, "placed", 2)
    await eventually(lambda: stack.receiver.at("/orders"), message="the placed order delivered")
    assert [r.json()["event_type"] for r in stack.receiver.at("/orders")] == ["placed"]

    shown = await run(stack, "get", filter_id)
    assert shown.splitlines()[:5] == [
        f"filter {filter_id}: 'orders placed', enabled",
        "  applications any",
        "  event types  shop/placed",
        "  levels       any",
        f"  endpoints    {endpoint['id']}",
    ]
    table = await run(stack, "list")
    assert table.splitlines()[0].split() == ["ID", "NAME", "STATE", "MATCHES", "ENDPOINTS"]
    [row] = table.splitlines()[1:]
    assert row.startswith(filter_id) and "event types: shop/placed" in row and row.endswith(endpoint["id"])

    # An update changes the sets it names and no other (updateMask from the flags).
    updated = await run_json(
        stack, "update", filter_id, "--level", "policies/policy-triggered/high", "--application", "policies"
    )
    assert updated["levels"] == [{"application": "policies", "eventType": "policy-triggered", "level": "high"}]
    assert updated["applications"] == ["policies"] and updated["name"] == "orders placed"
    assert updated["eventTypes"] == [{"application": "shop", "eventType": "placed"}]  # untouched
    text = await run(stack, "update", filter_id, "--any-event-type", "--any-level", "--disable")
    assert text.strip() == f"updated filter {filter_id}: event_types, levels, enabled"
    updated = await run_json(stack, "get", filter_id)
    assert (updated["eventTypes"], updated["levels"], updated["enabled"]) == ([], [], False)
    assert updated["applications"] == ["policies"] and updated["endpointIds"] == [endpoint["id"]]

    other = json.loads(
        await cli.run(
            stack,
            *("endpoints", "create", "email", "--name", "mail", "--target", "ops@example.com", "--json"),
            account=ACCOUNT,
        )
    )
    second = await run_json(stack, "create", "--endpoint", other["id"], "--disable")
    assert (second["enabled"], second["applications"], second["endpointIds"]) == (False, [], [other["id"]])
    rows = {line.split()[0]: line for line in (await run(stack, "list")).splitlines()[1:]}
    assert " disabled  everything " in rows[second["id"]]  # no set: every event of the account
    only_mail = [
        json.loads(line) for line in (await run(stack, "list", "--json", "--endpoint", other["id"])).splitlines()
    ]
    assert [f["id"] for f in only_mail] == [second["id"]]

    assert (await run(stack, "delete", filter_id)).strip() == f"deleted filter {filter_id}"
    assert "404 Not Found" in await cli.refused(stack, "filters", "get", filter_id, account=ACCOUNT)
    assert [f["id"] for f in map(json.loads, (await run(stack, "list", "--json")).splitlines())] == [second["id"]]


async def test_filter_mistakes_are_told_by_field_and_reason(stack):
    unknown = await cli.refused(
        stack, "filters", "create", "--event-type", "shop/nope", "--endpoint", "no-such-endpoint", account=ACCOUNT
    )
    assert "400 Bad Request" in unknown
    assert "  filter.event_types[0]: application 'shop' has no event type 'nope'" in unknown
    assert "  filter.endpoint_ids[0]: no endpoint 'no-such-endpoint' in your account" in unknown
    shape = await cli.refused(
        stack, "filters", "create", "--level", "policies/high", "--endpoint", "x", account=ACCOUNT
    )
    assert "--level" in shape and "APPLICATION/EVENT_TYPE/LEVEL" in shape
    assert "say what to change" in await cli.refused(stack, "filters", "update", "some-id", account=ACCOUNT)
    both = await cli.refused(stack, "filters", "update", "x", "--level", "a/b/c", "--any-level", account=ACCOUNT)
    assert "not both" in both
    assert "404 Not Found" in await cli.refused(stack, "filters", "update", "nope", "--disable", account=ACCOUNT)
