"""What each kind of endpoint receives for an event: the signed webhook JSON, a Slack, Microsoft Teams
or Google Chat message, or an e-mail."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage

from standardwebhooks import Webhook

from hooks.registry.v1 import endpoints_pb2


@dataclass
class HttpRequest:
    """A POST to an endpoint's URL."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def message_text(event: dict) -> str:
    """The notification's text: the message itself when it is a string, else its JSON."""
    message = event.get("message")
    if isinstance(message, str):
        return message
    return json.dumps(message, indent=2, sort_keys=True, ensure_ascii=False)


def title(event: dict) -> str:
    level = f" [{event['level']}]" if event.get("level") else ""
    return f"{event.get('application', '')}: {event.get('event_type', '')}{level}"


def _json(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@functools.lru_cache(maxsize=4096)
def _signer(secret: str) -> Webhook:
    """One signer per secret (its constructor decodes the secret; raises for an unusable one)."""
    return Webhook(secret)


def webhook(event: dict | str, delivery_id: str, secrets: Sequence[str], now: datetime) -> HttpRequest:
    """The event as JSON (sent as stored when given as its JSON text), signed per Standard Webhooks
    with each of `secrets` (the endpoint's, then during a rotation the one it replaced): one `v1,<sig>`
    each, space-separated, so a receiver holding either secret accepts it. `webhook-id` is the
    delivery's stable id, so a receiver can tell a repeat."""
    text = event if isinstance(event, str) else _json(event).decode()
    signature = " ".join(_signer(secret).sign(delivery_id, now, text) for secret in secrets)
    return HttpRequest(
        text.encode(),
        {
            "webhook-id": delivery_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        },
    )


def slack(event: dict) -> HttpRequest:
    """A Slack incoming-webhook message: `text` for notifications, `blocks` for the layout."""
    text = message_text(event)
    payload = {
        "text": f"{title(event)}: {text}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title(event)[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"account {event.get('account_id', '')} · {event.get('timestamp', '')}"}
                ],
            },
        ],
    }
    return HttpRequest(_json(payload))


def teams(event: dict) -> HttpRequest:
    """A Microsoft Teams incoming-webhook message carrying an Adaptive Card."""
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": title(event), "weight": "Bolder", "size": "Medium", "wrap": True},
            {"type": "TextBlock", "text": message_text(event), "wrap": True},
            {
                "type": "FactSet",
                "facts": [
                    {"title": "Account", "value": event.get("account_id", "")},
                    {"title": "Time", "value": event.get("timestamp", "")},
                ],
            },
        ],
    }
    payload = {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }
    return HttpRequest(_json(payload))


def google_chat(event: dict, delivery_id: str) -> HttpRequest:
    """A Google Chat space message: `text`, with a card for the details."""
    text = message_text(event)
    payload = {
        "text": f"{title(event)}: {text}",
        "cardsV2": [
            {
                "cardId": delivery_id,
                "card": {
                    "header": {"title": title(event), "subtitle": f"account {event.get('account_id', '')}"},
                    "sections": [{"widgets": [{"textParagraph": {"text": text}}]}],
                },
            }
        ],
    }
    return HttpRequest(_json(payload))


def email(event: dict, delivery_id: str, sender: str, recipient: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[hooks] {title(event)}"
    message["From"] = sender
    message["To"] = recipient
    message["Message-ID"] = f"<{delivery_id}@hooks>"
    message["X-Hooks-Delivery-Id"] = delivery_id
    message.set_content(
        f"{title(event)}\n\n{message_text(event)}\n\n"
        f"Account: {event.get('account_id', '')}\nTime: {event.get('timestamp', '')}\nEvent: {event.get('id', '')}\n"
    )
    return message


def http_request(
    endpoint_type: int, event: dict | str, delivery_id: str, secrets: Sequence[str], now: datetime
) -> HttpRequest:
    """The POST for an HTTP endpoint type (`event` as a dict or its JSON text; a webhook signed with
    each of `secrets`); ValueError for a type that is not sent over HTTP."""
    if endpoint_type == endpoints_pb2.ENDPOINT_TYPE_WEBHOOK:
        return _with_json_type(webhook(event, delivery_id, secrets, now))
    document: dict = json.loads(event) if isinstance(event, str) else event
    if endpoint_type == endpoints_pb2.ENDPOINT_TYPE_SLACK:
        request = slack(document)
    elif endpoint_type == endpoints_pb2.ENDPOINT_TYPE_TEAMS:
        request = teams(document)
    elif endpoint_type == endpoints_pb2.ENDPOINT_TYPE_GOOGLE_CHAT:
        request = google_chat(document, delivery_id)
    else:
        raise ValueError(f"endpoint type {endpoints_pb2.EndpointType.Name(endpoint_type)} is not sent over HTTP")
    return _with_json_type(request)


def _with_json_type(request: HttpRequest) -> HttpRequest:
    request.headers["content-type"] = "application/json"
    return request
