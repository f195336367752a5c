"""Endpoints' extra header values are secrets, like the signing secret: written, never shown. Get and
List (over gRPC and HTTP) and the dry run (MatchMessage) show each header's name with a hint; only the
sender, through the internal GetDeliveryTarget, has the values, and the receiver gets them. A caller
changes one header without sending the others' values again (`updateMask=headers.<name>`)."""

from __future__ import annotations

import pytest

from hooks.registry.v1 import applications_pb2, endpoints_pb2
from services.common.identity import IDENTITY_HEADER, encode_identity, identity_metadata
from tests.helpers.stack import running_stack
from tests.helpers.waiting import eventually

ACCOUNT = "acct-headers"
WHO = {IDENTITY_HEADER: encode_identity(ACCOUNT)}
TOKEN = "Bearer s3cr3t-t0ken-of-the-receiver"
SHOP = applications_pb2.Application(
    name="shop", title="Shop", event_types=[applications_pb2.EventType(id="placed", title="Placed")]
)


@pytest.fixture
async def stack(sqlite_url, kafka, topics):
    async with running_stack(sqlite_url, kafka.bootstrap_servers, topics) as running:
        await running.register(SHOP)
        yield running


def assert_no_value(text: str) -> None:
    assert "s3cr3t" not in text and "-receiver" not in text and "sre-pager" not in text, text


async def test_header_values_are_write_only_and_reach_the_receiver(stack):
    http = stack.http
    response = await http.post(
        "/api/hooks/v1/endpoints",
        json={
            "name": "ops",
            "type": "ENDPOINT_TYPE_WEBHOOK",
            "target": stack.receiver.url("/hook"),
            "enabled": True,
            "headers": {"Authorization": TOKEN, "X-Team": "ops"},
        },
        headers=WHO,
    )
    assert response.status_code == 200, response.text
    assert_no_value(response.text)
    created = response.json()
    assert "headers" not in created
    # The last four characters of a long value, nothing of a short one (4 of "ops" would be all of it).
    assert created["headerHints"] == {"Authorization": "iver", "X-Team": ""}
    endpoint_id = created["id"]
    response = await http.post(
        "/api/hooks/v1/filters", json={"name": "all", "enabled": True, "endpointIds": [endpoint_id]}, headers=WHO
    )
    assert response.status_code == 200, response.text

    # Read back every way a tenant can: one, the list, the dry run; over HTTP and over gRPC.
    for path in (f"/api/hooks/v1/endpoints/{endpoint_id}", "/api/hooks/v1/endpoints"):
        response = await http.get(path, headers=WHO)
        assert response.status_code == 200, response.text
        assert_no_value(response.text)
        assert "iver" in response.text
    response = await http.post(
        "/api/hooks/v1/messages:match", json={"application": "shop", "eventType": "placed"}, headers=WHO
    )
    assert response.status_code == 200, response.text
    assert [route["endpoint"]["id"] for route in response.json()["routes"]] == [endpoint_id]
    assert_no_value(response.text)
    metadata = identity_metadata(ACCOUNT)
    got = await stack.endpoints.GetEndpoint(endpoints_pb2.GetEndpointRequest(id=endpoint_id), metadata=metadata)
    listed = await stack.endpoints.ListEndpoints(endpoints_pb2.ListEndpointsRequest(), metadata=metadata)
    for endpoint in (got.endpoint, *listed.endpoints):
        assert not endpoint.headers and dict(endpoint.header_hints) == {"Authorization": "iver", "X-Team": ""}
        assert_no_value(str(endpoint))

    # One header changes; the other keeps its value although the caller never sent it again.
    response = await http.patch(
        f"/api/hooks/v1/endpoints/{endpoint_id}",
        params={"updateMask": "headers.x-team"},
        json={"headers": {"X-Team": "sre-pager-team"}},
        headers=WHO,
    )
    assert response.status_code == 200, response.text
    assert_no_value(response.text)
    assert response.json()["headerHints"] == {"Authorization": "iver", "X-Team": "team"}

    response = await http.post(
        "/api/hooks/v1/messages",
        json={"application": "shop", "eventType": "placed", "message": {"n": 1}, "id": "order-1"},
        headers=WHO,
    )
    assert response.status_code == 200, response.text
    [received] = await eventually(lambda: stack.receiver.at("/hook"), message="the delivery")
    assert received.headers["authorization"] == TOKEN
    assert received.headers["x-team"] == "sre-pager-team"
