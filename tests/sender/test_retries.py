"""Retries and giving up: 5xx then success, Retry-After, 4xx, 410 disabling the endpoint (and telling
its owner over Kafka), disabling an endpoint that fails too long, the SSRF guard, and endpoints that
were deleted or disabled meanwhile."""

from __future__ import annotations

import asyncio

from aiohttp import web

from hooks.registry.v1 import endpoints_pb2
from hooks.sender.v1 import deliveries_pb2
from services.common.identity import identity_metadata
from services.common.settings import KafkaSettings
from tests.helpers.sender import (
    answer,
    answers,
    consume_one,
    create_endpoint,
    deliver,
    make_event,
    new_account,
    request_for,
    running_sender,
    wait_for_status,
)
from tests.helpers.waiting import eventually

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED
FAILED = deliveries_pb2.DELIVERY_STATUS_FAILED


async def test_5xx_then_200_succeeds_on_the_second_attempt(sender, receiver):
    account = new_account()
    receiver.script["flaky"] = answers(503, 200)
    endpoint = await create_endpoint(sender, account, receiver.url("flaky"))
    [response] = await deliver(sender, request_for(make_event(account), endpoint.id))

    delivery = await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)

    assert delivery.attempt_count == 2
    first, second = delivery.attempts
    assert (first.number, first.http_status, first.succeeded) == (1, 503, False)
    assert first.error == "HTTP 503" and first.response_body == "answer 1"
    assert (second.number, second.http_status, second.succeeded) == (2, 200, True)
    assert second.start_time.ToDatetime() > first.start_time.ToDatetime()
    assert delivery.last_error == ""
    assert not delivery.HasField("next_attempt_time")
    # Both attempts carried the same stable id, so a receiver could tell the repeat.
    assert len({r.headers["webhook-id"] for r in receiver.on("flaky")}) == 1


async def test_429_waits_as_long_as_retry_after_says(sender, receiver):
    account = new_account()

    async def limited(_request, count):
        if count == 0:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    receiver.script["limited"] = limited
    endpoint = await create_endpoint(sender, account, receiver.url("limited"))
    [response] = await deliver(sender, request_for(make_event(account), endpoint.id))

    delivery = await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)

    first, second = receiver.on("limited")
    assert second.at - first.at >= 0.95  # not the 50 ms of the schedule
    assert [a.http_status for a in delivery.attempts] == [429, 200]


async def test_retries_give_up_when_the_schedule_is_exhausted(sender, receiver):
    account = new_account()
    receiver.script["down"] = answer(500, "boom")
    endpoint = await create_endpoint(sender, account, receiver.url("down"))
    [response] = await deliver(sender, request_for(make_event(account), endpoint.id))

    delivery = await wait_for_status(sender, account, response.delivery_ids[0], FAILED)

    assert delivery.attempt_count == 4  # the first try and the three of the schedule
    assert "gave up after 4 attempts" in delivery.last_error
    assert len(receiver.on("down")) == 4


async def test_400_fails_without_retry(sender, receiver):
    account = new_account()
    receiver.script["picky"] = answer(400, "bad payload")
    endpoint = await create_endpoint(sender, account, receiver.url("picky"))
    [response] = await deliver(sender, request_for(make_event(account), endpoint.id))

    delivery = await wait_for_status(sender, account, response.delivery_ids[0], FAILED)

    assert delivery.attempt_count == 1
    assert delivery.attempts[0].http_status == 400
    assert delivery.attempts[0].response_body == "bad payload"
    assert delivery.last_error == "HTTP 400"
    await asyncio.sleep(0.3)
    assert len(receiver.on("picky")) == 1


async def test_410_disables_the_endpoint_and_tells_its_owner(database_url, registry, receiver, kafka, topics):
    account = new_account()
    receiver.script["gone"] = answer(410)
    kafka_settings = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, topic=topics["outbox"])
    async with running_sender(database_url, registry, kafka=kafka_settings) as sender:
        endpoint = await create_endpoint(sender, account, receiver.url("gone"), name="old hook")
        [response] = await deliver(sender, request_for(make_event(account), endpoint.id))

        delivery = await wait_for_status(sender, account, response.delivery_ids[0], FAILED)
        assert delivery.attempt_count == 1 and delivery.attempts[0].http_status == 410

        async def disabled():
            stored = await sender.endpoints.GetEndpoint(
                endpoints_pb2.GetEndpointRequest(id=endpoint.id), metadata=identity_metadata(account)
            )
            return stored if not stored.endpoint.enabled else None

        stored = await eventually(disabled)
        assert "410" in stored.endpoint.disabled_reason

        published = await asyncio.to_thread(consume_one, kafka.bootstrap_servers, topics["outbox"])
    assert published["key"] == account
    event = published["value"]
    assert event["application"] == "hooks"
    assert event["event_type"] == "endpoint-disabled"
    assert event["level"] == ""
    assert event["account_id"] == account
    assert event["id"]
    assert event["timestamp"].endswith("Z")
    assert event["message"] == {
        "endpoint_id": endpoint.id,
        "endpoint_name": "old hook",
        "reason": stored.endpoint.disabled_reason,
    }


async def test_an_endpoint_failing_too_long_is_disabled(sqlite_url, receiver, kafka, topics):
    from tests.helpers.registry import running_registry

    account = new_account()
    receiver.script["dead"] = answer(503)
    kafka_settings = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, topic=topics["outbox"])
    async with running_registry(sqlite_url, registry_change_poll_seconds=0.05) as (_server, port):
        async with running_sender(
            sqlite_url,
            f"127.0.0.1:{port}",
            kafka=kafka_settings,
            sender_retry_schedule="100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms",
            sender_disable_after="300ms",
        ) as sender:
            endpoint = await create_endpoint(sender, account, receiver.url("dead"))
            [response] = await deliver(sender, request_for(make_event(account), endpoint.id))

            delivery = await wait_for_status(sender, account, response.delivery_ids[0], FAILED)
            assert "endpoint disabled" in delivery.last_error
            assert 2 <= delivery.attempt_count < 8
            stored = await sender.endpoints.GetEndpoint(
                endpoints_pb2.GetEndpointRequest(id=endpoint.id), metadata=identity_metadata(account)
            )
            assert stored.endpoint.enabled is False
            assert "failed for longer than" in stored.endpoint.disabled_reason

            # Deliveries queued for it afterwards fail without being sent.
            sent = len(receiver.on("dead"))
            [later] = await deliver(sender, request_for(make_event(account), endpoint.id))
            after = await wait_for_status(sender, account, later.delivery_ids[0], FAILED)
            assert after.last_error == "endpoint disabled" and after.attempt_count == 0
            assert len(receiver.on("dead")) == sent
            published = await asyncio.to_thread(consume_one, kafka.bootstrap_servers, topics["outbox"])
    assert published["value"]["event_type"] == "endpoint-disabled"
    assert published["value"]["message"]["endpoint_id"] == endpoint.id


async def test_private_addresses_are_refused(database_url, receiver):
    """At delivery, whatever the registry let through when the endpoints were written (here it
    allows them all, as if their names had resolved elsewhere then)."""
    from tests.helpers.registry import running_registry

    account = new_account()
    registry_allows = "127.0.0.0/8,169.254.169.254/32"
    async with (
        running_registry(database_url, sender_allowed_networks=registry_allows) as (_server, port),
        running_sender(database_url, f"127.0.0.1:{port}", sender_allowed_networks="") as sender,
    ):
        for name, target in (
            ("literal", receiver.url("literal")),
            ("named", f"http://localhost:{receiver.port}/named"),
            ("metadata", "http://169.254.169.254/latest/meta-data/"),
        ):
            endpoint = await create_endpoint(sender, account, target)
            [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
            delivery = await wait_for_status(sender, account, response.delivery_ids[0], FAILED)
            assert delivery.attempt_count == 1, name
            # The tenant learns that much, not what the name resolved to (tests/security/test_ssrf.py).
            assert delivery.last_error == "target address not allowed", (name, delivery.last_error)
    assert receiver.received == []


async def test_deleted_and_disabled_endpoints_fail_the_delivery(sender, receiver):
    account = new_account()
    receiver.script["held"] = answers(503, 200)
    deleted = await create_endpoint(sender, account, receiver.url("held"))
    disabled = await create_endpoint(sender, account, receiver.url("held"))
    await sender.endpoints.DeleteEndpoint(
        endpoints_pb2.DeleteEndpointRequest(id=deleted.id), metadata=identity_metadata(account)
    )
    disabled.enabled = False
    await sender.endpoints.UpdateEndpoint(
        endpoints_pb2.UpdateEndpointRequest(endpoint=disabled, update_mask={"paths": ["enabled"]}),
        metadata=identity_metadata(account),
    )
    [response] = await deliver(sender, request_for(make_event(account), deleted.id, disabled.id))

    gone = await wait_for_status(sender, account, response.delivery_ids[0], FAILED)
    off = await wait_for_status(sender, account, response.delivery_ids[1], FAILED)

    assert gone.last_error == "endpoint deleted" and gone.attempt_count == 0
    assert off.last_error == "endpoint disabled" and off.attempt_count == 0
    assert receiver.received == []
