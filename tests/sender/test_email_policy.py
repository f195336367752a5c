"""The operator's e-mail relay policy at send time: a recipient outside HOOKS_EMAIL_ALLOWED_DOMAINS gets
nothing (the policy may have narrowed since the endpoint was made), and an account over
HOOKS_SENDER_EMAIL_RATE_LIMIT has its e-mails wait for their turn, not lost and not counted as
attempts, while other accounts' e-mails go at once."""

from __future__ import annotations

import pytest
import pytest_asyncio

from hooks.registry.v1 import endpoints_pb2
from hooks.sender.v1 import deliveries_pb2
from tests.helpers.sender import (
    create_endpoint,
    deliver,
    get_delivery,
    make_event,
    new_account,
    request_for,
    running_sender,
    wait_for_status,
)
from tests.helpers.smtp import smtp_inbox
from tests.helpers.waiting import eventually

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED
FAILED = deliveries_pb2.DELIVERY_STATUS_FAILED
PENDING = deliveries_pb2.DELIVERY_STATUS_PENDING
EMAIL = endpoints_pb2.ENDPOINT_TYPE_EMAIL


@pytest.fixture(params=["sqlite"])
def database_url(request, sqlite_url):
    """The policy does not depend on the database: SQLite only."""
    return sqlite_url


@pytest_asyncio.fixture
async def inbox():
    async with smtp_inbox() as running:
        yield running


async def send(sender, account: str, endpoint_id: str, text: str) -> str:
    [response] = await deliver(sender, request_for(make_event(account, text), endpoint_id))
    assert response.status.code == 0, response.status
    return response.delivery_ids[0]


async def test_a_recipient_outside_the_allowed_domains_gets_nothing(registry, sqlite_url, inbox):
    # The registry allowed any domain when these endpoints were made; the sender's policy is narrower now.
    async with running_sender(
        sqlite_url, registry, sender_smtp_port=inbox.port, email_allowed_domains="example.com"
    ) as sender:
        account = new_account()
        outside = await create_endpoint(sender, account, "owner@elsewhere.example", type=EMAIL)
        inside = await create_endpoint(sender, account, "owner@eu.example.com", type=EMAIL)
        refused = await send(sender, account, outside.id, "to elsewhere")
        allowed = await send(sender, account, inside.id, "to a subdomain of example.com")

        delivery = await wait_for_status(sender, account, refused, FAILED)
        [attempt] = delivery.attempts
        assert "not allowed" in attempt.error and "elsewhere.example" in attempt.error
        await wait_for_status(sender, account, allowed, SUCCEEDED)
    assert [message.rcpt_tos for message in inbox.messages] == [["owner@eu.example.com"]]


async def test_an_account_over_its_email_rate_limit_waits_its_turn(registry, sqlite_url, inbox):
    # 2 e-mails per 6 s: a burst of 2, then one every 3 s.
    async with running_sender(
        sqlite_url, registry, sender_smtp_port=inbox.port, sender_email_rate_limit="2/6s"
    ) as sender:
        busy, other = new_account(), new_account()
        busy_endpoint = await create_endpoint(sender, busy, "busy@example.com", type=EMAIL)
        other_endpoint = await create_endpoint(sender, other, "other@example.com", type=EMAIL)
        first = [await send(sender, busy, busy_endpoint.id, f"burst {n}") for n in range(2)]
        third = await send(sender, busy, busy_endpoint.id, "over the limit")
        others = await send(sender, other, other_endpoint.id, "another account")

        for delivery_id in first:
            await wait_for_status(sender, busy, delivery_id, SUCCEEDED)
        await wait_for_status(sender, other, others, SUCCEEDED)

        async def waiting():
            delivery = await get_delivery(sender, busy, third)
            return delivery if delivery.status == PENDING and "rate limit" in delivery.last_error else None

        waited = await eventually(waiting, message="the third e-mail waits for its turn")
        assert waited.attempt_count == 0 and not waited.attempts  # waiting is not an attempt
        delivery = await wait_for_status(sender, busy, third, SUCCEEDED)
        assert len(delivery.attempts) == 1 and delivery.attempts[0].succeeded
    assert len(inbox.to("busy@example.com")) == 3 and len(inbox.to("other@example.com")) == 1
    third_arrived = next(m for m in inbox.messages if b"over the limit" in m.content)
    assert inbox.messages.index(third_arrived) == 3  # after the other account's, which did not wait
