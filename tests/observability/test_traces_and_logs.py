"""What an operator reads: one trace per message, from the Kafka record to the webhook's
`traceparent` header, and log lines that say which message, delivery and account they are about,
as JSON, without ever showing an endpoint's signing secret, even at DEBUG."""

from __future__ import annotations

import re

from standardwebhooks import Webhook

from tests.helpers.observability import ACCOUNT, SECRET, incoming
from tests.helpers.waiting import eventually

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


async def test_a_message_reaches_the_receiver_with_a_traceparent_that_the_matcher_logged(captured_logs, pipeline):
    await pipeline.endpoint("traced", "traced")
    message = incoming()
    await pipeline.aproduce([message])

    await eventually(lambda: pipeline.receiver.received, message="the webhook")
    received = pipeline.receiver.received[0]
    path, headers = received.path, received.headers
    assert path == "/traced"
    match = TRACEPARENT.match(headers.get("traceparent", ""))
    assert match, headers
    trace_id, parent_id, _flags = match.groups()
    assert trace_id != "0" * 32 and parent_id != "0" * 16  # all-zero ids are invalid (W3C)

    # The matcher's line for that message carries the same trace id, the message id and the account.
    handed = captured_logs.where(event="message handed to a sender", message_id=message["id"])
    assert handed, captured_logs.text
    assert handed[0]["trace_id"] == trace_id
    assert handed[0]["account_id"] == ACCOUNT
    assert handed[0]["level"] == "info"

    # The sender's lines about the delivery name the delivery (its webhook-id), the message and the account.
    delivery_id = headers["webhook-id"]
    sender_lines = await eventually(
        lambda: captured_logs.where(delivery_id=delivery_id, message_id=message["id"]), message="sender's log line"
    )
    assert all(line["account_id"] == ACCOUNT for line in sender_lines)
    # ...and no other message's line was tagged with this message.
    assert {line.get("trace_id") for line in captured_logs.where(message_id=message["id"]) if "trace_id" in line} == {
        trace_id
    }


async def test_each_message_gets_its_own_trace(captured_logs, pipeline):
    await pipeline.endpoint("traced", "traced")
    messages = [incoming(), incoming(), incoming()]
    await pipeline.aproduce(messages)

    await eventually(lambda: len(pipeline.receiver.received) >= 3, message="3 webhooks")
    traces = {TRACEPARENT.match(r.headers["traceparent"]).group(1) for r in pipeline.receiver.received}
    assert len(traces) == 3
    logged = {line["message_id"]: line["trace_id"] for line in captured_logs.where(event="message handed to a sender")}
    assert {logged[m["id"]] for m in messages} == traces


async def test_secrets_never_reach_the_logs_even_at_debug(captured_logs, pipeline):
    endpoint = await pipeline.endpoint("secret-keeper", "signed", secret=SECRET)
    message = incoming()
    await pipeline.aproduce([message])

    await eventually(lambda: pipeline.receiver.received, message="the webhook")
    received = pipeline.receiver.received[0]
    headers, body = received.headers, received.body
    assert Webhook(SECRET).verify(body, headers)["id"] == message["id"]  # the secret was really used
    delivery_id = headers["webhook-id"]
    await eventually(lambda: captured_logs.where(delivery_id=delivery_id), message="the delivery's log line")
    # The attempt's own lines (naming the endpoint) may be written after the line that names the delivery.
    await eventually(lambda: endpoint.id in captured_logs.text, message="a log line naming the endpoint")

    text = captured_logs.text
    lines = captured_logs.lines()  # every line is JSON
    assert any(line["level"] == "debug" for line in lines)  # DEBUG was really on
    assert delivery_id in text and endpoint.id in text
    assert SECRET not in text
    assert SECRET.removeprefix("whsec_") not in text
