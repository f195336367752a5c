"""Signing secret rotation as receivers see it (Standard Webhooks, as Svix does it): during the grace
period a delivery carries a signature by the new secret and one by the secret it replaced, so a
receiver verifying with either accepts the same delivery; after it, only the new secret's."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from google.protobuf import field_mask_pb2
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from hooks.registry.v1 import endpoints_pb2
from hooks.sender.v1 import deliveries_pb2
from services.common.identity import identity_metadata
from tests.helpers.registry import running_registry
from tests.helpers.sender import create_endpoint, deliver, make_event, new_account, request_for, wait_for_status
from tests.helpers.waiting import eventually

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED
OLD = "whsec_" + base64.b64encode(b"old secret of 32 bytes, exactly.").decode()
NEW = "whsec_" + base64.b64encode(b"new secret of 32 bytes, exactly.").decode()
#: Short, so the test sees it end; long enough for one delivery on a loaded machine.
GRACE_SECONDS = 5.0


@pytest.fixture(params=["sqlite"])
def database_url(request, sqlite_url):
    """Signing does not depend on the database (the registry's rotation is tested on both)."""
    return sqlite_url


@pytest_asyncio.fixture
async def registry(database_url):
    async with running_registry(
        database_url, registry_change_poll_seconds=0.05, registry_secret_rotation_grace_seconds=GRACE_SECONDS
    ) as (_server, port):
        yield f"127.0.0.1:{port}"


def accepts(secret: str, received) -> bool:
    try:
        Webhook(secret).verify(received.body, received.headers)
    except WebhookVerificationError:
        return False
    return True


async def test_both_secrets_verify_during_the_grace_period_and_only_the_new_one_after(sender, receiver):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("hook"), secret=OLD)
    rotated = await sender.endpoints.UpdateEndpoint(
        endpoints_pb2.UpdateEndpointRequest(
            endpoint=endpoints_pb2.Endpoint(id=endpoint.id, secret=NEW),
            update_mask=field_mask_pb2.FieldMask(paths=["secret"]),
        ),
        metadata=identity_metadata(account),
    )
    expires = rotated.endpoint.previous_secret_expire_time.ToDatetime(tzinfo=UTC)

    # During the grace period: one delivery, two signatures; a receiver holding either secret accepts it.
    [response] = await deliver(sender, request_for(make_event(account, "during"), endpoint.id))
    await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
    [during] = receiver.on("hook")
    assert datetime.now(UTC) < expires, "the delivery took longer than the grace period: make GRACE_SECONDS longer"
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert accepts(OLD, during) and accepts(NEW, during)

    # After it (the sender holds the endpoint cached, with the old secret's expiry): the new one only.
    await eventually(lambda: datetime.now(UTC) > expires, timeout=GRACE_SECONDS + 5, message="the grace period ends")
    [response] = await deliver(sender, request_for(make_event(account, "after"), endpoint.id))
    await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
    after = receiver.on("hook")[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert accepts(NEW, after) and not accepts(OLD, after)
