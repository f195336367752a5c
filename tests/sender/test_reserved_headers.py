"""An endpoint's own headers never set what the sender sets itself or what belongs to the connection
(services.common.headers.RESERVED_HEADERS), even an endpoint stored before the registry refused them:
those are left out, the others sent."""

from __future__ import annotations

from hooks.sender.v1 import deliveries_pb2
from services.sender.deliverer import USER_AGENT
from tests.helpers.sender import (
    create_endpoint,
    deliver,
    make_event,
    new_account,
    request_for,
    store_behind_the_registrys_back,
    wait_for_status,
)

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED
#: Reserved names with a tenant's values, as an old endpoint might hold them.
FORGED = {
    "User-Agent": "not-hooks/0",
    "Keep-Alive": "timeout=5",
    "Content-Encoding": "gzip",
    "Tracestate": "vendor=forged",
    "Webhook-Id": "msg_forged",
    "Webhook-Signature": "v1,forged",
}


async def test_reserved_headers_stored_on_an_endpoint_are_not_sent(sender, receiver, database_url):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("hook"), headers={"X-Team": "ops"})
    await store_behind_the_registrys_back(database_url, endpoint.id, headers={**FORGED, "X-Team": "ops"})

    [answer] = await deliver(sender, request_for(make_event(account), endpoint.id))
    [delivery_id] = answer.delivery_ids
    await wait_for_status(sender, account, delivery_id, SUCCEEDED)
    [received] = receiver.on("hook")
    assert received.headers["X-Team"] == "ops"
    assert received.headers["User-Agent"] == USER_AGENT
    assert received.headers["webhook-id"] == delivery_id
    assert received.headers["webhook-signature"] != FORGED["Webhook-Signature"]
    for name in ("Keep-Alive", "Content-Encoding", "Tracestate"):
        assert name not in received.headers, (name, dict(received.headers))
