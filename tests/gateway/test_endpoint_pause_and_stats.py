"""Pausing, resuming and the endpoints' health over HTTP, through the whole system (registry, sender,
matcher, the session's broker, a loopback receiver) on SQLite and PostgreSQL: messages published while
an endpoint is paused wait, PENDING, and arrive on resume; `:batchGetStats` shows the figures, zeros
to another account, and refuses requests out of bounds naming the field."""

from __future__ import annotations

import aiohttp
import pytest_asyncio

from services.sender.pauses import HELD
from tests.helpers.gateway import identity, register_policies
from tests.helpers.stack import running_stack
from tests.helpers.waiting import eventually

A, B = identity("acct-a"), identity("acct-b")
API = "/api/hooks/v1"


@pytest_asyncio.fixture
async def stack(database_url, kafka, topics):
    async with running_stack(database_url, kafka.bootstrap_servers, topics) as running:
        await register_policies(running.registry_target)
        yield running


async def _routed_endpoint(http, url: str) -> str:
    response = await http.post(
        f"{API}/endpoints",
        json={"name": "ops", "type": "ENDPOINT_TYPE_WEBHOOK", "target": url, "enabled": True},
        headers=A,
    )
    assert response.status_code == 200, response.text
    endpoint_id = response.json()["id"]
    response = await http.post(
        f"{API}/filters",
        json={"name": "policies", "enabled": True, "applications": ["policies"], "endpointIds": [endpoint_id]},
        headers=A,
    )
    assert response.status_code == 200, response.text
    return endpoint_id


async def test_pause_publish_resume_and_the_figures_over_http(stack):
    http = stack.http
    endpoint_id = await _routed_endpoint(http, stack.receiver.url("/hook"))

    response = await http.post(f"{API}/endpoints/{endpoint_id}:pause", json={}, headers=A)
    assert response.status_code == 200, response.text
    paused = response.json()
    assert paused["id"] == endpoint_id and paused["paused"] is True and paused["pauseTime"].endswith("Z")
    again = await http.post(f"{API}/endpoints/{endpoint_id}:pause", json={}, headers=A)
    assert again.json()["pauseTime"] == paused["pauseTime"]
    assert (await http.get(f"{API}/endpoints/{endpoint_id}", headers=A)).json()["paused"] is True

    for n in range(3):
        response = await http.post(
            f"{API}/messages",
            json={
                "application": "policies",
                "eventType": "policy-triggered",
                "level": "high",
                "message": {"n": n},
                "id": f"msg-{n}",
                "timestamp": "2026-12-08T10:00:00Z",
            },  # fmt: skip
            headers=A,
        )
        assert response.status_code == 200, response.text

    async def held() -> list[dict] | None:
        listed = (await http.get(f"{API}/endpoints/{endpoint_id}/deliveries", headers=A)).json()["deliveries"]
        return listed if len(listed) == 3 and all(d["lastError"] == HELD for d in listed) else None

    deliveries = await eventually(held, timeout=20, message="three deliveries held")
    for delivery in deliveries:
        assert delivery["status"] == "DELIVERY_STATUS_PENDING" and delivery["attemptCount"] == 0
        assert "nextAttemptTime" not in delivery
    assert stack.receiver.at("/hook") == []
    response = await http.get(f"{API}/endpoints:batchGetStats", params={"endpointIds": endpoint_id}, headers=A)
    assert response.status_code == 200, response.text
    assert response.json()["stats"] == [
        {
            "endpointId": endpoint_id, "lastAttemptSucceeded": False, "lastHttpStatus": 0, "attempts24h": 0,
            "succeededAttempts24h": 0, "pendingCount": 3,
        }
    ]  # fmt: skip

    response = await http.post(f"{API}/endpoints/{endpoint_id}:resume", json={}, headers=A)
    assert response.status_code == 200, response.text
    assert response.json()["paused"] is False and "pauseTime" not in response.json()
    await eventually(lambda: len(stack.receiver.at("/hook")) == 3, timeout=10, message="all three arrive")
    in_creation_order = [d["id"] for d in sorted(deliveries, key=lambda d: d["createTime"])]
    assert [r.headers["webhook-id"] for r in stack.receiver.at("/hook")] == in_creation_order

    async def all_counted() -> dict | None:
        response = await http.get(
            f"{API}/endpoints:batchGetStats", params=[("endpointIds", endpoint_id), ("endpointIds", "nope")], headers=A
        )
        stats = response.json()["stats"]
        return stats if stats[0]["attempts24h"] == 3 and stats[0]["pendingCount"] == 0 else None

    mine, unknown = await eventually(all_counted, timeout=10)
    assert mine["succeededAttempts24h"] == 3 and mine["lastAttemptSucceeded"] is True and mine["lastHttpStatus"] == 200
    assert mine["lastAttemptTime"].endswith("Z") and "failingSince" not in mine
    zeros = {
        "lastAttemptSucceeded": False, "lastHttpStatus": 0, "attempts24h": 0, "succeededAttempts24h": 0,
        "pendingCount": 0,
    }  # fmt: skip
    assert unknown == {"endpointId": "nope", **zeros}
    theirs = await http.get(f"{API}/endpoints:batchGetStats", params={"endpointIds": endpoint_id}, headers=B)
    assert theirs.json()["stats"] == [{"endpointId": endpoint_id, **zeros}]

    # Another account cannot pause or resume it.
    for verb in ("pause", "resume"):
        response = await http.post(f"{API}/endpoints/{endpoint_id}:{verb}", json={}, headers=B)
        assert response.status_code == 404, response.text


async def test_the_figures_of_a_thousand_endpoints_in_one_request_and_the_bounds(stack):
    http = stack.http
    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(1000)]
    response = await http.get(f"{API}/endpoints:batchGetStats", params={"endpointIds": ids}, headers=A)
    assert response.status_code == 200, response.text
    assert [s["endpointId"] for s in response.json()["stats"]] == ids
    # The longest request the document allows: 1000 ids of 64 characters each 4 bytes in UTF-8 (12 bytes
    # percent-encoded), about 780 KB of query; answered in JSON (aiohttp's 8 KiB line limit answered in text).
    # (httpx refuses a query over 64 KiB: aiohttp's client sends it.)
    longest = [f"{n:04d}" + "\U0001f600" * 60 for n in range(1000)]
    async with aiohttp.ClientSession() as session:
        url = f"{str(http.base_url).rstrip('/')}{API}/endpoints:batchGetStats"
        async with session.get(url, params=[("endpointIds", i) for i in longest], headers=A) as answer:
            assert answer.status == 200, await answer.text()
            assert [s["endpointId"] for s in (await answer.json())["stats"]] == longest
    for params, field in (
        ({}, "endpoint_ids"),
        ({"endpointIds": ids + ["one-more"]}, "endpoint_ids"),
        ({"endpointIds": ["a", ""]}, "endpoint_ids[1]"),
    ):
        response = await http.get(f"{API}/endpoints:batchGetStats", params=params, headers=A)
        assert response.status_code == 400, response.text
        assert [v["field"] for v in response.json()["details"][0]["fieldViolations"]] == [field]
    response = await http.get(f"{API}/endpoints:batchGetStats", params={"endpointIds": "a"})
    assert response.status_code == 401
    response = await http.post(f"{API}/endpoints/{ids[0]}:pause", json={}, headers=A)
    assert response.status_code == 404
