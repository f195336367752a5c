"""What each kind of endpoint receives: a signed webhook, Slack, Teams and Google Chat messages, e-mail."""

from __future__ import annotations

import json

import pytest
import pytest_asyncio
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from hooks.registry.v1 import endpoints_pb2
from hooks.sender.v1 import deliveries_pb2
from tests.helpers.sender import (
    create_endpoint,
    deliver,
    make_event,
    new_account,
    request_for,
    running_sender,
    wait_for_status,
)
from tests.helpers.smtp import smtp_inbox
from tests.helpers.waiting import eventually

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(params=["sqlite"])
def database_url(request, sqlite_url):
    """Formatting does not depend on the database: SQLite only."""
    return sqlite_url


async def test_webhook_is_signed_per_standard_webhooks(sender, receiver):
    account = new_account()
    endpoint = await create_endpoint(
        sender,
        account,
        receiver.url("hook"),
        secret="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        headers={"X-Team": "ops"},
    )
    event = make_event(account, {"disk": "/var", "used": 97})
    [response] = await deliver(sender, request_for(event, endpoint.id, traceparent=TRACEPARENT))
    assert response.status.code == 0
    [delivery_id] = response.delivery_ids

    await wait_for_status(sender, account, delivery_id, SUCCEEDED)
    [received] = receiver.on("hook")
    payload = Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").verify(received.body, received.headers)
    assert payload == {
        "id": event.id,
        "application": "inventory",
        "event_type": "disk-full",
        "level": "critical",
        "account_id": account,
        "timestamp": "2026-11-27T10:00:00Z",
        "message": {"disk": "/var", "used": 97},
    }
    assert received.headers["webhook-id"] == delivery_id
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["traceparent"] == TRACEPARENT
    assert received.headers["X-Team"] == "ops"
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(received.body, received.headers)


@pytest.mark.parametrize(
    "endpoint_type",
    [endpoints_pb2.ENDPOINT_TYPE_SLACK, endpoints_pb2.ENDPOINT_TYPE_TEAMS, endpoints_pb2.ENDPOINT_TYPE_GOOGLE_CHAT],
)
async def test_chat_formats(sender, receiver, endpoint_type):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("chat"), type=endpoint_type)
    [response] = await deliver(sender, request_for(make_event(account, "disk /var is 97% full"), endpoint.id))
    await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
    [received] = receiver.on("chat")
    payload = json.loads(received.body)
    assert "webhook-signature" not in received.headers
    if endpoint_type == endpoints_pb2.ENDPOINT_TYPE_SLACK:
        assert "disk /var is 97% full" in payload["text"]
        assert "inventory: disk-full" in payload["text"]
        assert any(block["type"] == "section" and "97%" in block["text"]["text"] for block in payload["blocks"])
    elif endpoint_type == endpoints_pb2.ENDPOINT_TYPE_TEAMS:
        assert payload["type"] == "message"
        [attachment] = payload["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard"
        texts = [block.get("text", "") for block in card["body"]]
        assert "disk /var is 97% full" in texts
    else:
        assert "disk /var is 97% full" in payload["text"]
        [card] = payload["cardsV2"]
        assert card["card"]["header"]["title"] == "inventory: disk-full [critical]"


@pytest_asyncio.fixture
async def smtp():
    async with smtp_inbox() as inbox:
        yield inbox


async def test_email_is_sent_over_smtp(registry, sqlite_url, smtp):
    inbox = smtp
    async with running_sender(
        sqlite_url, registry, sender_smtp_port=inbox.port, sender_smtp_from="alerts@hooks.example"
    ) as sender:
        account = new_account()
        endpoint = await create_endpoint(sender, account, "owner@example.com", type=endpoints_pb2.ENDPOINT_TYPE_EMAIL)
        [response] = await deliver(sender, request_for(make_event(account, "disk /var is 97% full"), endpoint.id))
        delivery = await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
        assert delivery.attempts[0].succeeded
    await eventually(lambda: inbox.messages)
    [envelope] = inbox.messages
    assert envelope.mail_from == "alerts@hooks.example"
    assert envelope.rcpt_tos == ["owner@example.com"]
    text = envelope.content.decode()
    assert "Subject: [hooks] inventory: disk-full [critical]" in text
    assert "disk /var is 97% full" in text
