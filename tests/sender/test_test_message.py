"""A test message (SendTestMessage) is an incoming message like any other: built by the one envelope
builder (`hooks_client.envelope`), with the same timestamp precision as what applications publish."""

from __future__ import annotations

import json
import re

from hooks.sender.v1 import deliveries_pb2
from hooks_client.envelope import parse_document
from services.common.identity import identity_metadata
from tests.helpers.sender import create_endpoint, new_account

#: RFC 3339 in UTC with microseconds, as `hooks_client.envelope.format_timestamp` writes it.
MICROSECONDS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


async def test_a_test_message_is_an_incoming_message_with_microseconds(sender, receiver):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("test"))
    response = await sender.deliveries.SendTestMessage(
        deliveries_pb2.SendTestMessageRequest(endpoint_id=endpoint.id, message="hello"),
        metadata=identity_metadata(account),
    )
    assert response.delivery.status == deliveries_pb2.DELIVERY_STATUS_SUCCEEDED
    [received] = receiver.on("test")
    body = json.loads(received.body)
    assert list(body) == ["id", "application", "event_type", "level", "account_id", "timestamp", "message"]
    assert MICROSECONDS_Z.fullmatch(body["timestamp"]), body["timestamp"]
    message = parse_document(body)  # what the matcher would accept
    assert (message.application, message.event_type, message.account_id, message.message) == (
        "hooks",
        "test",
        account,
        "hello",
    )
    assert message.id is not None and message.id.startswith("test-")
