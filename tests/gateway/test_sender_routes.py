"""The sender's routes through the gateway: an endpoint's test message, deliveries list/get/retry, an
endpoint's deliveries, and the live status stream as Server-Sent Events; real registry and sender
(SQLite), a real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import json

import pytest_asyncio
from aiohttp import web

from gateway.settings import GatewaySettings
from services.sender.server import build_server as build_sender
from services.sender.settings import SenderSettings
from tests.helpers.gateway import identity, running_gateway
from tests.helpers.registry import running_registry

A, B = identity("acct-a"), identity("acct-b")


@pytest_asyncio.fixture
async def receiver_url():
    """An HTTP receiver on loopback: /ok answers 200, anything else 500."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200 if request.path == "/ok" else 500, text="answered")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def sender_gateway(tmp_path):
    async with running_registry(f"sqlite:///{tmp_path / 'registry.db'}") as (_, registry_port):
        sender = await build_sender(
            SenderSettings(
                sender_database_url=f"sqlite:///{tmp_path / 'sender.db'}",
                registry_target=f"127.0.0.1:{registry_port}",
                sender_retry_schedule="1h",
                sender_poll_interval_seconds=0.05,
                sender_allowed_networks="127.0.0.0/8",
                sender_attempt_timeout_seconds=5.0,
                shutdown_grace_seconds=0.5,
            )
        )
        sender_port = await sender.start("127.0.0.1:0")
        try:
            settings = GatewaySettings(
                registry_target=f"127.0.0.1:{registry_port}", sender_target=f"127.0.0.1:{sender_port}"
            )
            async with running_gateway(settings) as client:
                yield client
        finally:
            await sender.stop(0.5)


async def _endpoint(client, url: str, who=A) -> str:
    response = await client.post(
        "/api/hooks/v1/endpoints",
        json={"name": url.rsplit("/", 1)[-1], "type": "ENDPOINT_TYPE_WEBHOOK", "target": url, "enabled": True},
        headers=who,
    )
    assert response.status_code == 200, response.text
    return response.json()["id"]


async def test_test_message_and_deliveries(sender_gateway, receiver_url):
    ok = await _endpoint(sender_gateway, f"{receiver_url}/ok")
    failing = await _endpoint(sender_gateway, f"{receiver_url}/fail")

    response = await sender_gateway.post(f"/api/hooks/v1/endpoints/{ok}:test", json={"message": "hello"}, headers=A)
    assert response.status_code == 200, response.text
    delivered = response.json()  # response_body: the delivery
    assert delivered["status"] == "DELIVERY_STATUS_SUCCEEDED" and delivered["attemptCount"] == 1
    assert delivered["event"]["application"] == "hooks" and delivered["event"]["message"] == "hello"

    response = await sender_gateway.post(f"/api/hooks/v1/endpoints/{failing}:test", json={}, headers=A)
    assert response.status_code == 200, response.text
    failed = response.json()
    # A 500 is retried later (the schedule here says in an hour).
    assert failed["status"] == "DELIVERY_STATUS_PENDING" and failed["attemptCount"] == 1
    assert failed["nextAttemptTime"].endswith("Z")

    response = await sender_gateway.get("/api/hooks/v1/deliveries", headers=A)
    assert response.status_code == 200
    assert {d["id"] for d in response.json()["deliveries"]} == {delivered["id"], failed["id"]}
    response = await sender_gateway.get(
        "/api/hooks/v1/deliveries", params={"status": "DELIVERY_STATUS_SUCCEEDED"}, headers=A
    )
    assert [d["id"] for d in response.json()["deliveries"]] == [delivered["id"]]
    newest = max(response.json()["deliveries"] + [failed], key=lambda d: d["createTime"])["createTime"]
    response = await sender_gateway.get(
        "/api/hooks/v1/deliveries", params={"createdBefore": "1970-01-02T00:00:00Z"}, headers=A
    )
    assert response.status_code == 200 and response.json()["deliveries"] == []
    response = await sender_gateway.get("/api/hooks/v1/deliveries", params={"createdAfter": newest}, headers=A)
    assert response.status_code == 200 and len(response.json()["deliveries"]) >= 1
    # The additional binding: an endpoint's deliveries.
    response = await sender_gateway.get(f"/api/hooks/v1/endpoints/{failing}/deliveries", headers=A)
    assert [d["id"] for d in response.json()["deliveries"]] == [failed["id"]]

    response = await sender_gateway.get(f"/api/hooks/v1/deliveries/{delivered['id']}", headers=A)
    assert response.status_code == 200
    attempts = response.json()["attempts"]
    assert attempts[0]["httpStatus"] == 200 and attempts[0]["succeeded"] is True
    assert attempts[0]["latency"].endswith("s")  # a Duration, as a string

    response = await sender_gateway.post(
        "/api/hooks/v1/deliveries:retry",
        json={"endpointId": failing, "createdBefore": "1970-01-02T00:00:00Z"},
        headers=A,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"queued": 0, "more": False}  # none that old
    response = await sender_gateway.post("/api/hooks/v1/deliveries:retry", json={"endpointId": failing}, headers=A)
    assert response.json() == {"queued": 0, "more": False}, response.text  # it waits for a retry: not FAILED

    response = await sender_gateway.post(f"/api/hooks/v1/deliveries/{failed['id']}:retry", json={}, headers=A)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == failed["id"]

    for params in ({"status": "DELIVERY_STATUS_BOGUS"}, {"pageSize": 1001}, {"pageToken": "garbage"}):
        response = await sender_gateway.get("/api/hooks/v1/deliveries", params=params, headers=A)
        assert response.status_code == 400, (params, response.text)


async def test_another_account_reaches_no_delivery(sender_gateway, receiver_url):
    endpoint = await _endpoint(sender_gateway, f"{receiver_url}/ok")
    delivery = (await sender_gateway.post(f"/api/hooks/v1/endpoints/{endpoint}:test", json={}, headers=A)).json()
    for method, path in [
        ("GET", f"/api/hooks/v1/deliveries/{delivery['id']}"),
        ("POST", f"/api/hooks/v1/deliveries/{delivery['id']}:retry"),
        ("POST", f"/api/hooks/v1/endpoints/{endpoint}:test"),
    ]:
        response = await sender_gateway.request(method, path, json={} if method == "POST" else None, headers=B)
        assert response.status_code == 404, (method, path, response.text)
    assert (await sender_gateway.get("/api/hooks/v1/deliveries", headers=B)).json()["deliveries"] == []
    response = await sender_gateway.get(f"/api/hooks/v1/endpoints/{endpoint}/deliveries", headers=B)
    assert response.json()["deliveries"] == []


async def test_watch_streams_the_callers_delivery_statuses(sender_gateway, receiver_url):
    endpoint = await _endpoint(sender_gateway, f"{receiver_url}/ok")
    other = await _endpoint(sender_gateway, f"{receiver_url}/ok", who=B)
    seen: list[dict] = []
    async with sender_gateway.stream("GET", "/api/hooks/v1/deliveries:watch", headers=A) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert await asyncio.wait_for(lines.__anext__(), 20) == ": stream open"
        await sender_gateway.post(f"/api/hooks/v1/endpoints/{other}:test", json={}, headers=B)
        sent = (await sender_gateway.post(f"/api/hooks/v1/endpoints/{endpoint}:test", json={}, headers=A)).json()

        async def until_succeeded() -> None:
            async for line in lines:
                if line.startswith("data: "):
                    seen.append(json.loads(line.removeprefix("data: ")))
                    if seen[-1]["delivery"]["status"] == "DELIVERY_STATUS_SUCCEEDED":
                        return

        await asyncio.wait_for(until_succeeded(), 20)
    assert {event["delivery"]["id"] for event in seen} == {sent["id"]}  # never B's
    assert seen[-1]["delivery"]["endpointId"] == endpoint


async def _events(lines, count: int, until=lambda event: False) -> list[tuple[str, dict]]:
    """The next `count` Server-Sent Events with data (or fewer, up to the first `until` accepts), as
    (id, data); comment lines skipped."""
    events: list[tuple[str, dict]] = []
    event_id = ""
    async for line in lines:
        if line.startswith("id: "):
            event_id = line.removeprefix("id: ")
        elif line.startswith("data: "):
            events.append((event_id, json.loads(line.removeprefix("data: "))))
            event_id = ""
            if len(events) == count or until(events[-1]):
                return events
    raise AssertionError(f"the stream ended after {events}")


async def test_a_watch_resumes_after_the_last_event_id_with_exactly_what_it_missed(sender_gateway, receiver_url):
    """What an EventSource does: each event has an `id:`; after a disconnect it reconnects with
    `Last-Event-ID`, and gets the deliveries changed meanwhile (each once, as it now stands), then
    live ones. (Those changed within 2 s before the last event would be sent again too: none here,
    the last event's own delivery excepted, which is not.)"""
    endpoint = await _endpoint(sender_gateway, f"{receiver_url}/ok")
    watch = "/api/hooks/v1/deliveries:watch"

    def succeeded(event) -> bool:
        return event[1]["delivery"]["status"] == "DELIVERY_STATUS_SUCCEEDED"

    async with sender_gateway.stream("GET", watch, headers=A) as response:
        lines = response.aiter_lines()
        assert await asyncio.wait_for(lines.__anext__(), 20) == ": stream open"
        first = (await sender_gateway.post(f"/api/hooks/v1/endpoints/{endpoint}:test", json={}, headers=A)).json()
        seen = await asyncio.wait_for(_events(lines, 10, succeeded), 20)
    assert [data["delivery"]["id"] for _, data in seen] == [first["id"]] * 2
    assert all(event_id for event_id, _ in seen), "every event has an id"
    assert [event_id for event_id, _ in seen] == [data["resumeToken"] for _, data in seen]
    last_event_id = seen[-1][0]

    missed = []
    for _ in range(2):  # while nobody watches; each delivered by the time the call answers
        sent = await sender_gateway.post(f"/api/hooks/v1/endpoints/{endpoint}:test", json={}, headers=A)
        missed.append(sent.json()["id"])

    async with sender_gateway.stream("GET", watch, headers={**A, "Last-Event-ID": last_event_id}) as response:
        assert response.status_code == 200
        lines = response.aiter_lines()
        caught_up = await asyncio.wait_for(_events(lines, 2), 20)
        live = (await sender_gateway.post(f"/api/hooks/v1/endpoints/{endpoint}:test", json={}, headers=A)).json()
        after = await asyncio.wait_for(_events(lines, 10, succeeded), 20)
    assert [(data["delivery"]["id"], data["delivery"]["status"]) for _, data in caught_up] == [
        (delivery_id, "DELIVERY_STATUS_SUCCEEDED") for delivery_id in missed
    ]
    assert [data["delivery"]["id"] for _, data in after] == [live["id"]] * 2

    # A resumeToken query parameter does the same; the header wins over it (an EventSource
    # reconnects to the URL it was opened with, which may carry one, sending a newer Last-Event-ID).
    expected = [(delivery_id, "DELIVERY_STATUS_SUCCEEDED") for delivery_id in [*missed, live["id"]]]
    for request in (
        {"params": {"resumeToken": last_event_id}, "headers": A},
        {"params": {"resumeToken": "not-a-token"}, "headers": {**A, "Last-Event-ID": last_event_id}},
    ):
        async with sender_gateway.stream("GET", watch, **request) as response:
            assert response.status_code == 200, request
            events = await asyncio.wait_for(_events(response.aiter_lines(), 3), 20)
        assert [(data["delivery"]["id"], data["delivery"]["status"]) for _, data in events] == expected


async def test_a_malformed_resume_token_is_400_naming_it(sender_gateway):
    watch = "/api/hooks/v1/deliveries:watch"
    for request in ({"headers": {**A, "Last-Event-ID": "not-a-token"}}, {"headers": A, "params": {"resumeToken": "x"}}):
        response = await sender_gateway.get(watch, **request)
        assert response.status_code == 400, response.text
        [violation] = response.json()["details"][0]["fieldViolations"]
        assert violation["field"] == "resume_token", violation
        assert "is not a resume token" in violation["description"]
