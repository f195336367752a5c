"""A message published to Kafka by a plain producer reaches the places the account chose, in their formats:
signed webhooks (and the delivery shows in the API), Slack, Teams, Google Chat, e-mail. Changes to
filters and endpoints apply to the next messages without restarting anything."""

from __future__ import annotations

import json

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from hooks.registry.v1 import endpoints_pb2, filters_pb2
from hooks.sender.v1 import deliveries_pb2
from tests.helpers.e2e import ACCOUNT, SECRET, incoming, produce
from tests.helpers.kafka import first_record
from tests.helpers.waiting import eventually


@pytest.mark.parametrize("sender_database_url", ["sqlite", "postgresql"], indirect=True)
async def test_a_published_message_reaches_the_webhook_signed_and_is_listed(pipeline):
    hooks, receiver = pipeline.hooks, pipeline.receiver
    await hooks.register()
    endpoint = await hooks.endpoint("ci", receiver.url("/hook"), secret=SECRET)
    await hooks.filter([endpoint.id], applications=["policies"])

    message = incoming(ACCOUNT, "policies", "policy-triggered", "high", message={"policy": "cpu > 90%"})
    produce(pipeline.bootstrap, pipeline.topic, [message])

    await eventually(lambda: receiver.at("/hook"), message="the webhook arrives")
    [request] = receiver.at("/hook")
    # What a receiver does: verify the Standard Webhooks signature with the endpoint's secret.
    payload = Webhook(SECRET).verify(request.body, request.headers)
    assert payload["id"] == message["id"]
    assert (payload["application"], payload["event_type"], payload["level"]) == ("policies", "policy-triggered", "high")
    assert payload["account_id"] == ACCOUNT
    assert payload["message"] == {"policy": "cpu > 90%"}
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 40).verify(request.body, request.headers)  # another secret does not verify

    deliveries: list = []

    async def succeeded() -> bool:
        deliveries[:] = await hooks.deliveries_of(endpoint_id=endpoint.id)
        return bool(deliveries) and deliveries[0].status == deliveries_pb2.DELIVERY_STATUS_SUCCEEDED

    await eventually(succeeded, message="the delivery is listed as succeeded")
    [delivery] = deliveries
    assert delivery.event.id == message["id"]
    assert delivery.attempt_count == 1
    assert request.headers["webhook-id"] == delivery.id  # the stable id receivers de-duplicate on


async def test_slack_teams_google_chat_and_email_get_their_formats(pipeline):
    hooks, receiver = pipeline.hooks, pipeline.receiver
    await hooks.register()
    slack = await hooks.endpoint("slack", receiver.url("/slack"), endpoints_pb2.ENDPOINT_TYPE_SLACK)
    teams = await hooks.endpoint("teams", receiver.url("/teams"), endpoints_pb2.ENDPOINT_TYPE_TEAMS)
    chat = await hooks.endpoint("chat", receiver.url("/chat"), endpoints_pb2.ENDPOINT_TYPE_GOOGLE_CHAT)
    mail = await hooks.endpoint("mail", "ops@example.com", endpoints_pb2.ENDPOINT_TYPE_EMAIL)
    await hooks.filter([slack.id, teams.id, chat.id, mail.id])

    message = incoming(ACCOUNT, "policies", "policy-created", message="Policy 'disk' was created")
    produce(pipeline.bootstrap, pipeline.topic, [message])

    await eventually(
        lambda: all(receiver.at(p) for p in ("/slack", "/teams", "/chat")) and pipeline.smtp.messages,
        message="every endpoint gets the message",
    )
    slack_body = receiver.at("/slack")[0].json()
    assert "Policy 'disk' was created" in slack_body["text"]
    assert "policies" in slack_body["text"]

    teams_body = receiver.at("/teams")[0].json()
    assert teams_body["type"] == "message"
    [attachment] = teams_body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "Policy 'disk' was created" in json.dumps(attachment["content"])

    chat_body = receiver.at("/chat")[0].json()
    assert "Policy 'disk' was created" in chat_body["text"]

    [(mail_from, recipients, email)] = pipeline.smtp.emails()
    assert recipients == ["ops@example.com"]
    assert "policies" in email["Subject"]
    assert "Policy 'disk' was created" in email.get_content()
    for request in receiver.requests:
        assert request.headers["Content-Type"].startswith("application/json")


async def test_filter_and_endpoint_changes_apply_to_the_next_messages(pipeline):
    hooks, receiver = pipeline.hooks, pipeline.receiver
    await hooks.register()
    endpoint = await hooks.endpoint("ci", receiver.url("/a"), secret=SECRET)
    only_triggered = await hooks.filter(
        [endpoint.id], event_types=[filters_pb2.EventTypeRef(application="policies", event_type="policy-triggered")]
    )
    account = ACCOUNT
    produced = 0

    async def publish(event_type: str, level: str = "") -> dict:
        nonlocal produced
        message = incoming(account, "policies", event_type, level)
        produce(pipeline.bootstrap, pipeline.topic, [message])
        produced += 1
        return message

    async def all_done() -> None:
        """The matcher has finished (delivered or found no route for) every message produced so far."""
        await eventually(lambda: pipeline.committed() >= produced, message="the matcher commits every message")

    first = await publish("policy-triggered", "low")
    await eventually(lambda: ids_at(receiver, "/a") == {first["id"]})

    # The filter now wants policy-created only: the next policy-triggered goes nowhere, policy-created arrives.
    await hooks.update_filter(
        only_triggered.id,
        ["event_types"],
        event_types=[filters_pb2.EventTypeRef(application="policies", event_type="policy-created")],
    )
    ignored = await publish("policy-triggered", "low")
    wanted = await publish("policy-created")
    await eventually(lambda: wanted["id"] in ids_at(receiver, "/a"))
    await all_done()
    assert ignored["id"] not in ids_at(receiver, "/a")
    assert await hooks.deliveries_of(event_id=ignored["id"]) == []

    # The endpoint moves to another URL: the next message goes there.
    await hooks.update_endpoint(endpoint.id, ["target"], target=receiver.url("/b"))
    moved = await publish("policy-created")
    await eventually(lambda: ids_at(receiver, "/b") == {moved["id"]})
    assert moved["id"] not in ids_at(receiver, "/a")

    # Disabled: nothing more is delivered to it.
    await hooks.update_endpoint(endpoint.id, ["enabled"], enabled=False)
    silenced = await publish("policy-created")
    await all_done()
    assert await hooks.deliveries_of(event_id=silenced["id"]) == []
    assert silenced["id"] not in ids_at(receiver, "/a") | ids_at(receiver, "/b")


async def test_a_failed_attempt_is_retried_with_the_same_webhook_id(pipeline):
    hooks, receiver = pipeline.hooks, pipeline.receiver
    receiver.script = [503, 500]  # the receiver is briefly down, then well
    await hooks.register()
    endpoint = await hooks.endpoint("ci", receiver.url("/hook"), secret=SECRET)
    await hooks.filter([endpoint.id])
    message = incoming(ACCOUNT, "policies", "policy-created")
    produce(pipeline.bootstrap, pipeline.topic, [message])

    await eventually(lambda: len(receiver.at("/hook")) == 3, message="two failures, then a success")
    attempts = receiver.at("/hook")
    assert len({r.headers["webhook-id"] for r in attempts}) == 1
    for attempt in attempts:
        assert Webhook(SECRET).verify(attempt.body, attempt.headers)["id"] == message["id"]

    async def succeeded_on_third_attempt() -> bool:
        [delivery] = await hooks.deliveries_of(endpoint_id=endpoint.id)
        return delivery.status == deliveries_pb2.DELIVERY_STATUS_SUCCEEDED and delivery.attempt_count == 3

    await eventually(succeeded_on_third_attempt, message="the delivery shows three attempts and success")


async def test_an_invalid_message_is_dead_lettered_and_does_not_hold_up_the_next(pipeline):
    hooks, receiver = pipeline.hooks, pipeline.receiver
    await hooks.register()
    endpoint = await hooks.endpoint("ci", receiver.url("/hook"), secret=SECRET)
    await hooks.filter([endpoint.id])
    broken = incoming(ACCOUNT, "policies", "policy-triggered", "high")
    del broken["account_id"]
    valid = incoming(ACCOUNT, "policies", "policy-triggered", "high")
    # One key, so one partition: the broken message comes first.
    produce(pipeline.bootstrap, pipeline.topic, [broken, valid], key="one-partition")

    await eventually(lambda: receiver.at("/hook"), message="the valid message is delivered")
    dead = first_record(pipeline.bootstrap, pipeline.dlq_topic)
    assert json.loads(dead.value()) == broken
    assert dead.headers(), "the dead letter says why, in headers"


# -- helpers ----------------------------------------------------------------------------------------


def ids_at(receiver, path: str) -> set[str]:
    return {json.loads(r.body)["id"] for r in receiver.at(path)}
