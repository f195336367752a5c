"""Every registry route through the gateway, with a real registry (SQLite; the gateway does not care
which database is behind it) over real sockets: applications, endpoints and filters, their
errors, and tenancy (another account's resource is 404 through every route)."""

from __future__ import annotations

import pytest_asyncio

from gateway.settings import GatewaySettings
from tests.helpers.gateway import identity, register_policies, running_gateway
from tests.helpers.registry import running_registry

A, B = identity("acct-a"), identity("acct-b")


@pytest_asyncio.fixture
async def registry_gateway(sqlite_url):
    async with running_registry(sqlite_url) as (_, port):
        await register_policies(f"127.0.0.1:{port}")
        async with running_gateway(GatewaySettings(registry_target=f"127.0.0.1:{port}")) as client:
            yield client


async def _endpoint(client, who=A, **fields) -> dict:
    body = {"name": "ops", "type": "ENDPOINT_TYPE_WEBHOOK", "target": "https://hooks.example.com/x", **fields}
    response = await client.post("/api/hooks/v1/endpoints", json=body, headers=who)
    assert response.status_code == 200, response.text
    return response.json()


async def test_applications_list_and_get(registry_gateway):
    response = await registry_gateway.get("/api/hooks/v1/applications", headers=A)
    assert response.status_code == 200, response.text
    names = [app["name"] for app in response.json()["applications"]]
    assert "policies" in names and "hooks" in names
    response = await registry_gateway.get("/api/hooks/v1/applications/policies", headers=A)
    assert response.status_code == 200
    application = response.json()  # response_body: the application itself
    assert application["title"] == "Policies"
    assert application["eventTypes"][0]["levels"] == [{"id": "high", "title": "High"}]
    assert application["createTime"].endswith("Z")
    response = await registry_gateway.get("/api/hooks/v1/applications", params={"pageSize": 1}, headers=A)
    assert len(response.json()["applications"]) == 1 and response.json()["nextPageToken"]
    response = await registry_gateway.get("/api/hooks/v1/applications/nope", headers=A)
    assert response.status_code == 404 and response.json()["code"] == 5


async def test_endpoint_crud(registry_gateway):
    created = await _endpoint(registry_gateway, who={**A, "x-request-id": "req-1"}, headers={"X-Team": "ops"})
    assert created["id"] and created["type"] == "ENDPOINT_TYPE_WEBHOOK"
    assert "headers" not in created and created["headerHints"] == {"X-Team": ""}  # values are write-only
    assert "secret" not in created and created["secretHint"] == created["generatedSecret"][-4:]  # shown once
    endpoint_id = created["id"]

    response = await registry_gateway.get(f"/api/hooks/v1/endpoints/{endpoint_id}", headers=A)
    assert response.status_code == 200 and response.json()["name"] == "ops"

    await _endpoint(registry_gateway, name="billing-alerts")
    response = await registry_gateway.get("/api/hooks/v1/endpoints", params={"nameContains": "BILL"}, headers=A)
    assert [e["name"] for e in response.json()["endpoints"]] == ["billing-alerts"]

    response = await registry_gateway.patch(
        f"/api/hooks/v1/endpoints/{endpoint_id}",
        params={"updateMask": "description,enabled"},
        json={"description": "the ops team", "enabled": True, "name": "not changed"},
        headers=A,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["description"] == "the ops team" and updated["enabled"] is True and updated["name"] == "ops"

    response = await registry_gateway.delete(f"/api/hooks/v1/endpoints/{endpoint_id}", headers=A)
    assert response.status_code == 200 and response.json() == {}
    response = await registry_gateway.get(f"/api/hooks/v1/endpoints/{endpoint_id}", headers=A)
    assert response.status_code == 404


async def test_an_update_without_a_mask_changes_the_fields_in_the_body(registry_gateway):
    """AIP-134: no updateMask means the fields present in the body; output-only ones are ignored, so a
    resource read with GET can be changed and sent back as it is."""
    created = await _endpoint(registry_gateway, description="before", headers={"X-Team": "ops"})
    url = f"/api/hooks/v1/endpoints/{created['id']}"

    response = await registry_gateway.patch(url, json={"enabled": False}, headers=A)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["enabled"] is False
    assert (updated["name"], updated["description"], updated["headerHints"]) == ("ops", "before", {"X-Team": ""})

    read = (await registry_gateway.get(url, headers=A)).json()
    read.pop("type")  # immutable: sent back, it asks for a change that cannot be made
    response = await registry_gateway.patch(url, json={**read, "description": "after"}, headers=A)
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "after" and response.json()["name"] == "ops"

    response = await registry_gateway.patch(url, json={"id": "x", "createTime": read["createTime"]}, headers=A)
    assert response.status_code == 400, response.text
    assert response.json()["details"][0]["fieldViolations"][0]["field"] == "updateMask"


async def test_update_mask_paths_in_either_case_and_header_names_as_given(registry_gateway):
    created = await _endpoint(registry_gateway, headers={"X-Team": "ops"})
    url = f"/api/hooks/v1/endpoints/{created['id']}"
    response = await registry_gateway.patch(
        url, params={"updateMask": "description"}, json={"description": "d", "name": "ignored"}, headers=A
    )
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "d" and response.json()["name"] == "ops"
    for mask in ("ca_certificate", "caCertificate"):  # both name the same field: clearing it is allowed
        response = await registry_gateway.patch(url, params={"updateMask": mask}, json={}, headers=A)
        assert response.status_code == 200, (mask, response.text)
    response = await registry_gateway.patch(
        url, params={"updateMask": "headers.X-Token"}, json={"headers": {"X-Token": "t"}}, headers=A
    )
    assert response.status_code == 200, response.text
    assert response.json()["headerHints"] == {"X-Team": "", "X-Token": ""}
    response = await registry_gateway.patch(url, params={"updateMask": "nope"}, json={}, headers=A)
    assert response.status_code == 400
    assert "writable fields are" in response.json()["details"][0]["fieldViolations"][0]["description"]
    # As the OpenAPI document says: a mask has no empty path, and an update has a body.
    for params in ({"updateMask": "description,"}, {"updateMask": ""}):
        response = await registry_gateway.patch(url, params=params, json={"description": "e"}, headers=A)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["details"][0]["fieldViolations"][0]["field"] == "updateMask"
    response = await registry_gateway.patch(url, params={"updateMask": "description"}, headers=A)
    assert response.status_code == 400
    assert response.json()["details"][0]["fieldViolations"][0]["field"] == "endpoint"


async def test_endpoint_errors_carry_the_field_violations(registry_gateway):
    response = await registry_gateway.post(
        "/api/hooks/v1/endpoints",
        json={"name": "bad", "type": "ENDPOINT_TYPE_WEBHOOK", "target": "ftp://x"},
        headers=A,
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 3
    violations = body["details"][0]["fieldViolations"]
    assert any(v["field"].endswith("target") for v in violations), violations
    await _endpoint(registry_gateway, name="twice")
    response = await registry_gateway.post(
        "/api/hooks/v1/endpoints",
        json={"name": "twice", "type": "ENDPOINT_TYPE_WEBHOOK", "target": "https://a.example.com"},
        headers=A,
    )
    assert response.status_code == 409 and response.json()["code"] == 6
    response = await registry_gateway.get("/api/hooks/v1/endpoints", params={"pageSize": 1001}, headers=A)
    assert response.status_code == 400


async def test_a_value_of_the_wrong_shape_is_named_with_what_the_field_wants(registry_gateway):
    response = await registry_gateway.post(
        "/api/hooks/v1/endpoints", json={"name": "e", "type": "webhook", "target": "https://a.example.com"}, headers=A
    )
    assert response.status_code == 400, response.text
    [(field, description)] = [(v["field"], v["description"]) for v in response.json()["details"][0]["fieldViolations"]]
    assert field == "endpoint.type"
    assert "'webhook' is not one of ENDPOINT_TYPE_WEBHOOK" in description and "UNSPECIFIED" not in description
    response = await registry_gateway.post(
        "/api/hooks/v1/filters", json={"name": "f", "eventTypes": ["x"], "endpointIds": "e"}, headers=A
    )
    assert response.status_code == 400, response.text
    violations = dict((v["field"], v["description"]) for v in response.json()["details"][0]["fieldViolations"])
    assert violations["filter.eventTypes[0]"].startswith("must be a JSON object")
    assert violations["filter.endpointIds"] == "must be a JSON array"


async def test_filter_crud(registry_gateway):
    endpoint = await _endpoint(registry_gateway)
    response = await registry_gateway.post(
        "/api/hooks/v1/filters",
        json={
            "name": "high policies",
            "enabled": True,
            "applications": ["policies"],
            "levels": [{"application": "policies", "eventType": "policy-triggered", "level": "high"}],
            "endpointIds": [endpoint["id"]],
        },
        headers=A,
    )
    assert response.status_code == 200, response.text
    created = response.json()
    filter_id = created["id"]
    assert created["levels"][0]["level"] == "high"

    response = await registry_gateway.get(f"/api/hooks/v1/filters/{filter_id}", headers=A)
    assert response.status_code == 200 and response.json()["name"] == "high policies"
    response = await registry_gateway.get("/api/hooks/v1/filters", params={"endpointId": endpoint["id"]}, headers=A)
    assert [f["id"] for f in response.json()["filters"]] == [filter_id]
    response = await registry_gateway.patch(
        f"/api/hooks/v1/filters/{filter_id}", params={"updateMask": "enabled"}, json={"enabled": False}, headers=A
    )
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is False
    response = await registry_gateway.post(
        "/api/hooks/v1/filters", json={"name": "no endpoints", "endpointIds": []}, headers=A
    )
    assert response.status_code == 400
    response = await registry_gateway.delete(f"/api/hooks/v1/filters/{filter_id}", headers=A)
    assert response.status_code == 200
    assert (await registry_gateway.get(f"/api/hooks/v1/filters/{filter_id}", headers=A)).status_code == 404


async def test_one_account_cannot_reach_anothers_resources(registry_gateway):
    endpoint = await _endpoint(registry_gateway, who=A)
    response = await registry_gateway.post(
        "/api/hooks/v1/filters", json={"name": "a's", "endpointIds": [endpoint["id"]]}, headers=A
    )
    filter_id = response.json()["id"]
    endpoint_id = endpoint["id"]
    attempts = [
        ("GET", f"/api/hooks/v1/endpoints/{endpoint_id}", None, None),
        ("PATCH", f"/api/hooks/v1/endpoints/{endpoint_id}", {"updateMask": "name"}, {"name": "stolen"}),
        ("DELETE", f"/api/hooks/v1/endpoints/{endpoint_id}", None, None),
        ("GET", f"/api/hooks/v1/filters/{filter_id}", None, None),
        ("PATCH", f"/api/hooks/v1/filters/{filter_id}", {"updateMask": "name"}, {"name": "stolen"}),
        ("DELETE", f"/api/hooks/v1/filters/{filter_id}", None, None),
    ]
    for method, path, params, body in attempts:
        response = await registry_gateway.request(method, path, params=params, json=body, headers=B)
        assert response.status_code == 404, (method, path, response.text)
    # B's filter cannot point at A's endpoint either.
    response = await registry_gateway.post(
        "/api/hooks/v1/filters", json={"name": "b's", "endpointIds": [endpoint_id]}, headers=B
    )
    assert response.status_code in (400, 404), response.text
    assert (await registry_gateway.get("/api/hooks/v1/endpoints", headers=B)).json()["endpoints"] == []
    assert (await registry_gateway.get("/api/hooks/v1/filters", headers=B)).json()["filters"] == []
    # A's things are untouched.
    response = await registry_gateway.get(f"/api/hooks/v1/endpoints/{endpoint_id}", headers=A)
    assert response.json()["name"] == "ops"
    assert (await registry_gateway.get(f"/api/hooks/v1/filters/{filter_id}", headers=A)).status_code == 200
