"""The `endpoint-disabled` event goes through the sender's outbox (issue 9): written before the
registry is asked, kept until the broker acknowledged it, so a Kafka outage or a sender that died
after deciding loses nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from hooks.registry.v1 import endpoints_pb2
from services.common.broker import EmbeddedBroker, ensure_topics, free_port
from services.common.identity import identity_metadata
from services.common.settings import KafkaSettings
from services.sender.disabled_events import endpoint_disabled_event
from services.sender.models import OutboxEvent
from tests.helpers.sender import (
    answer,
    consume_one,
    create_endpoint,
    deliver,
    make_event,
    new_account,
    request_for,
    running_sender,
)
from tests.helpers.waiting import eventually


async def _enabled(sender, account: str, endpoint_id: str) -> bool:
    stored = await sender.endpoints.GetEndpoint(
        endpoints_pb2.GetEndpointRequest(id=endpoint_id), metadata=identity_metadata(account)
    )
    return stored.endpoint.enabled


async def test_the_event_arrives_once_kafka_is_up(database_url, registry, receiver, tmp_path):
    """The sender points at a broker that is not up yet; the endpoint is disabled; the event waits in
    the outbox and arrives once the broker starts."""
    account = new_account()
    receiver.script["gone"] = answer(410)
    broker = EmbeddedBroker(port=free_port())
    topic = f"hooks.outbox.{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic=topic)
    try:
        async with running_sender(database_url, registry, kafka=kafka) as sender:
            outbox = sender.server.sender.deliverer.disabler.outbox
            endpoint = await create_endpoint(sender, account, receiver.url("gone"), name="old hook")
            await deliver(sender, request_for(make_event(account), endpoint.id))
            await eventually(lambda: _disabled(sender, account, endpoint.id))

            async def tried_and_kept():
                rows = await outbox.pending()
                return rows if rows and rows[0].confirmed and rows[0].attempts >= 1 else None

            [row] = await eventually(tried_and_kept, timeout=30)
            assert row.endpoint_id == endpoint.id and outbox.published == 0

            await asyncio.to_thread(broker.start, 30.0, str(tmp_path / "broker.log"))
            await asyncio.to_thread(ensure_topics, {"bootstrap.servers": broker.bootstrap_servers}, [topic], 2)
            published = await asyncio.to_thread(consume_one, broker.bootstrap_servers, topic, 60.0)
            await eventually(lambda: _empty(outbox))
    finally:
        broker.stop()
    assert published["key"] == account
    event = published["value"]
    assert event["id"] == row.event_id
    assert (event["application"], event["event_type"], event["account_id"]) == ("hooks", "endpoint-disabled", account)
    assert event["message"]["endpoint_id"] == endpoint.id
    assert event["message"]["endpoint_name"] == "old hook"
    assert "410" in event["message"]["reason"]


async def _disabled(sender, account, endpoint_id):
    return not await _enabled(sender, account, endpoint_id)


async def _empty(outbox):
    return not await outbox.pending()


async def test_a_decision_left_by_a_dead_sender_is_carried_out(database_url, registry, receiver, kafka, topics):
    """What a sender that died right after deciding leaves behind (the outbox row, unconfirmed, the
    registry never asked): the next sender disables the endpoint and publishes the event."""
    account = new_account()
    kafka_settings = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, topic=topics["outbox"])
    async with running_sender(database_url, registry, kafka=kafka_settings) as sender:
        endpoint = await create_endpoint(sender, account, receiver.url("ok"), name="soon disabled")
        event_id = str(uuid.uuid4())
        reason = "deliveries failed for longer than 5 days"
        long_ago = datetime.now(UTC) - timedelta(minutes=5)
        engine = sender.server.sender.deliverer.disabler.outbox.engine
        async with engine.begin() as connection:
            await connection.execute(
                insert(OutboxEvent.__table__).values(
                    event_id=event_id, account_id=account, endpoint_id=endpoint.id, reason=reason,
                    payload=endpoint_disabled_event(event_id, account, endpoint.id, endpoint.name, reason).decode(),
                    confirmed=False, attempts=0, last_error="", available_at=long_ago, created_at=long_ago,
                )
            )  # fmt: skip
        await sender.server.sender.deliverer.disabler.outbox.relay_once()  # now, not at the next poll
        await eventually(lambda: _disabled(sender, account, endpoint.id))
        published = await asyncio.to_thread(consume_one, kafka.bootstrap_servers, topics["outbox"])
    assert published["value"]["id"] == event_id
    assert published["value"]["message"] == {
        "endpoint_id": endpoint.id,
        "endpoint_name": "soon disabled",
        "reason": reason,
    }


async def test_an_endpoint_disabled_already_gets_no_second_event(database_url, registry, receiver, kafka, topics):
    """Two decisions for one endpoint (two replicas, or a 410 after the streak): the registry changes it
    once, so one event is published and the other decision is dropped."""
    account = new_account()
    kafka_settings = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, topic=topics["outbox"])
    async with running_sender(database_url, registry, kafka=kafka_settings) as sender:
        endpoint = await create_endpoint(sender, account, receiver.url("ok"))
        disabler = sender.server.sender.deliverer.disabler
        assert await disabler.disable(account, endpoint.id, endpoint.name, "first") is True
        assert await disabler.disable(account, endpoint.id, endpoint.name, "second") is False
        await eventually(lambda: _empty(disabler.outbox))
        assert disabler.outbox.published == 1
