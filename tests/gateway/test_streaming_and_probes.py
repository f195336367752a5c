"""Server-streaming RPCs as Server-Sent Events, /healthz, /readyz, and /metrics on the metrics port."""

from __future__ import annotations

import asyncio
import json

from tests.helpers.gateway import identity


async def _events(response, want: int, timeout: float = 20) -> tuple[list[str], list[str]]:
    """(data and event lines, comment lines) until `want` data/event lines or the stream ends."""
    lines, comments = [], []

    async def read() -> None:
        async for line in response.aiter_lines():
            if line.startswith(":"):
                comments.append(line)
            elif line:
                lines.append(line)
                if sum(x.startswith("data:") for x in lines) >= want:
                    return

    await asyncio.wait_for(read(), timeout)
    return lines, comments


async def test_a_server_stream_is_server_sent_events(echo_gateway):
    async with echo_gateway.stream(
        "GET", "/api/testing/v1/counts", params={"count": 3, "intervalMs": 10}, headers=identity()
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines, _ = await _events(response, 3)
    assert [json.loads(line.removeprefix("data: ")) for line in lines] == [
        {"number": 0},
        {"number": 1},
        {"number": 2},
    ]


async def test_a_quiet_stream_gets_keep_alive_comments(echo_gateway):
    # The gateway of these tests sends keep-alives every 0.2 s (15 s by default).
    async with echo_gateway.stream(
        "GET", "/api/testing/v1/counts", params={"count": 0}, headers=identity()
    ) as response:
        assert response.status_code == 200
        comments: list[str] = []

        async def read() -> None:
            async for line in response.aiter_lines():
                if line.startswith(": keep-alive"):
                    comments.append(line)
                    if len(comments) >= 2:
                        return

        await asyncio.wait_for(read(), 20)
    assert len(comments) >= 2


async def test_an_error_at_once_gets_its_status_and_a_later_one_an_error_event(echo_gateway):
    response = await echo_gateway.get("/api/testing/v1/counts", params={"failCode": 5}, headers=identity())
    assert response.status_code == 404
    assert response.json()["code"] == 5
    async with echo_gateway.stream(
        "GET", "/api/testing/v1/counts", params={"count": 1, "failCode": 8}, headers=identity()
    ) as response:
        assert response.status_code == 200
        lines = [line async for line in response.aiter_lines() if line and not line.startswith(":")]
    assert lines[0] == 'data: {"number": 0}'
    assert lines[1] == "event: error"
    assert json.loads(lines[2].removeprefix("data: "))["code"] == 8


async def test_healthz_readyz_and_metrics(echo_gateway):
    response = await echo_gateway.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "SERVING"
    response = await echo_gateway.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["services"] == {"testing.v1.EchoService": "SERVING"}

    await echo_gateway.get("/api/testing/v1/rooms/r1/echoes/e1", headers=identity())
    await echo_gateway.get("/api/testing/v1/rooms/r2/echoes/e2", headers=identity())
    await echo_gateway.post("/api/testing/v1/failures/5", json={}, headers=identity())
    await echo_gateway.get("/api/testing/v1/no/such/route/123", headers=identity())
    response = await echo_gateway.get(echo_gateway.metrics_url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'hooks_gateway_requests_total{method="GET",route="/api/testing/v1/rooms/{room.id}/echoes/{id}",status="200"} 2.0'
        in text
    )
    assert 'route="/api/testing/v1/failures/{code}",status="404"} 1.0' in text
    assert 'route="unmatched",status="404"} 1.0' in text
    assert "/no/such/route" not in text  # raw paths never become labels
    assert (await echo_gateway.get("/metrics")).status_code == 404  # not on the public port
    assert (
        'hooks_gateway_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/testing/v1/rooms/{room.id}/echoes/{id}"}'
        in text
    )


async def test_every_json_answer_ends_with_a_newline(echo_gateway):
    """curl's output (an answer, an error, a probe, the OpenAPI document) ends on a line of its own."""
    answers = [
        await echo_gateway.get("/api/testing/v1/rooms/r1/echoes/e1", headers=identity()),
        await echo_gateway.get("/api/testing/v1/rooms/r1/echoes/e1"),  # no identity: 401
        await echo_gateway.get("/healthz"),
        await echo_gateway.get("/api/hooks/v1/openapi.json"),
    ]
    for answer in answers:
        assert answer.headers["content-type"].startswith("application/json"), answer.url
        assert answer.content.endswith(b"}\n"), (answer.url, answer.content[-20:])
    assert [a.status_code for a in answers] == [200, 401, 200, 200]
