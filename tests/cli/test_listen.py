"""`hooks listen`: what a person trying hooks out sees when a webhook arrives."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from cli.listen import make_app

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize("status", [200, 503])
async def test_prints_the_delivery_and_checks_its_signature(status):
    printed: list[str] = []
    server = TestServer(make_app(SECRET, status, echo=printed.append), host="127.0.0.1")
    await server.start_server()
    try:
        body = json.dumps({"application": "demo", "message": "hi"})
        now = datetime.now(tz=UTC)
        signature = Webhook(SECRET).sign("msg_1", now, body)
        headers = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        async with httpx.AsyncClient(base_url=str(server.make_url("/"))) as client:
            good = await client.post("/hook", content=body, headers=headers)
            bad = await client.post("/hook", content=body, headers={**headers, "webhook-signature": "v1,AAAA"})
    finally:
        await server.close()
    assert good.status_code == bad.status_code == status
    assert "webhook-id=msg_1" in printed[0] and "signature valid" in printed[0] and '"message": "hi"' in printed[0]
    assert "SIGNATURE INVALID" in printed[1]
