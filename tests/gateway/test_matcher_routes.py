"""The matcher's routes through the gateway: publishing a message and the `:match` dry run, with the
whole system behind it (registry, sender, matcher, the session's broker)."""

from __future__ import annotations

from tests.helpers.gateway import identity

A, B = identity("acct-a"), identity("acct-b")


async def _routed_endpoint(client) -> tuple[str, str]:
    response = await client.post(
        "/api/hooks/v1/endpoints",
        json={"name": "ops", "type": "ENDPOINT_TYPE_WEBHOOK", "target": "https://hooks.example.com/x", "enabled": True},
        headers=A,
    )
    endpoint_id = response.json()["id"]
    response = await client.post(
        "/api/hooks/v1/filters",
        json={"name": "policies", "enabled": True, "applications": ["policies"], "endpointIds": [endpoint_id]},
        headers=A,
    )
    assert response.status_code == 200, response.text
    return endpoint_id, response.json()["id"]


async def test_match_and_publish(full_gateway):
    endpoint_id, filter_id = await _routed_endpoint(full_gateway)
    event = {"application": "policies", "eventType": "policy-triggered", "level": "high"}

    response = await full_gateway.post("/api/hooks/v1/messages:match", json=event, headers=A)
    assert response.status_code == 200, response.text
    routes = response.json()["routes"]
    assert [(r["endpoint"]["id"], r["filterIds"]) for r in routes] == [(endpoint_id, [filter_id])]
    assert "secret" not in routes[0]["endpoint"]
    # Another account's filters never route my events, nor mine theirs.
    response = await full_gateway.post("/api/hooks/v1/messages:match", json=event, headers=B)
    assert response.status_code == 200 and response.json()["routes"] == []

    response = await full_gateway.post(
        "/api/hooks/v1/messages",
        json={**event, "message": {"policy": "disk", "used": 0.97}, "id": "msg-1", "timestamp": "2026-11-27T10:00:00Z"},
        headers=A,
    )
    assert response.status_code == 200, response.text
    published = response.json()
    assert published["id"] == "msg-1" and published["topic"].startswith("hooks.outbox.")
    assert int(published["offset"]) >= 0  # int64: a string in protobuf JSON


async def test_unregistered_events_and_missing_fields_are_400(full_gateway):
    response = await full_gateway.post(
        "/api/hooks/v1/messages:match", json={"application": "nope", "eventType": "x"}, headers=A
    )
    assert response.status_code == 400, response.text
    assert response.json()["details"][0]["fieldViolations"][0]["field"] == "application"
    response = await full_gateway.post(
        "/api/hooks/v1/messages",
        json={"application": "policies", "eventType": "policy-triggered", "level": "high"},
        headers=A,
    )
    assert response.status_code == 400
    assert any(v["field"] == "message" for v in response.json()["details"][0]["fieldViolations"])


async def test_hostile_messages_are_400_naming_the_field(full_gateway):
    """NaN, Infinity and numbers past a double are not JSON; nesting past the limit and control characters in
    names are refused with the field named: never a 500, never a Python class name."""
    event = '{"application": "policies", "eventType": "policy-triggered", "level": "high", "message": %s}'
    for raw in ("NaN", "-Infinity", "1e999", '{"x": [NaN]}'):
        response = await full_gateway.post(
            "/api/hooks/v1/messages", content=(event % raw).encode(), headers={**A, "content-type": "application/json"}
        )
        assert response.status_code == 400, (raw, response.text)
        assert "not JSON" in response.json()["message"] or "too large" in response.json()["message"], response.text
    deep = "[" * 40 + "]" * 40
    response = await full_gateway.post(
        "/api/hooks/v1/messages", content=(event % deep).encode(), headers={**A, "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert [v["field"] for v in response.json()["details"][0]["fieldViolations"]] == ["message"]
    response = await full_gateway.post(
        "/api/hooks/v1/messages",
        json={
            "application": "policies",
            "eventType": "policy-triggered",
            "level": "high",
            "message": "x",
            "id": "a\u0000b",
        },
        headers=A,
    )
    assert response.status_code == 400, response.text
    assert [v["field"] for v in response.json()["details"][0]["fieldViolations"]] == ["id"]
