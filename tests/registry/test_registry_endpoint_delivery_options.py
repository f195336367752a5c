"""An endpoint's delivery options through the API: a rate limit (requests per second or minute) and
the delivery order; stored, returned, given to the sender with the delivery target, validated."""

from __future__ import annotations

from google.protobuf import field_mask_pb2

from hooks.registry.v1 import endpoints_pb2 as pb
from hooks.registry.v1 import routing_pb2 as r_pb
from services.common.identity import identity_metadata
from tests.helpers.registry import expect_invalid

ME = identity_metadata("acct-1")


def webhook(**fields) -> pb.Endpoint:
    return pb.Endpoint(
        name=fields.pop("name", "ops"), type=pb.ENDPOINT_TYPE_WEBHOOK, target="https://x.example", **fields
    )


async def test_an_endpoint_is_unlimited_and_unordered_unless_told(registry):
    endpoint = await registry.endpoint("acct-1", "plain")
    assert endpoint.rate_limit.requests == 0 and endpoint.order == pb.DELIVERY_ORDER_UNORDERED


async def test_rate_limit_and_order_are_stored_returned_and_given_to_the_sender(registry):
    created = (
        await registry.endpoints.CreateEndpoint(
            pb.CreateEndpointRequest(
                endpoint=webhook(
                    rate_limit=pb.RateLimit(requests=10, period=pb.RATE_LIMIT_PERIOD_SECOND),
                    order=pb.DELIVERY_ORDER_ORDERED,
                )
            ),
            metadata=ME,
        )
    ).endpoint
    assert created.rate_limit == pb.RateLimit(requests=10, period=pb.RATE_LIMIT_PERIOD_SECOND)
    assert created.order == pb.DELIVERY_ORDER_ORDERED
    target = await registry.routing.GetDeliveryTarget(r_pb.GetDeliveryTargetRequest(endpoint_id=created.id))
    assert target.endpoint.rate_limit.requests == 10 and target.endpoint.order == pb.DELIVERY_ORDER_ORDERED

    updated = (
        await registry.endpoints.UpdateEndpoint(
            pb.UpdateEndpointRequest(
                endpoint=pb.Endpoint(
                    id=created.id, rate_limit=pb.RateLimit(requests=600, period=pb.RATE_LIMIT_PERIOD_MINUTE)
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["rate_limit"]),
            ),
            metadata=ME,
        )
    ).endpoint
    assert updated.rate_limit == pb.RateLimit(requests=600, period=pb.RATE_LIMIT_PERIOD_MINUTE)
    assert updated.order == pb.DELIVERY_ORDER_ORDERED  # not in the mask: kept

    cleared = (
        await registry.endpoints.UpdateEndpoint(
            pb.UpdateEndpointRequest(
                endpoint=pb.Endpoint(id=created.id),
                update_mask=field_mask_pb2.FieldMask(paths=["rate_limit", "order"]),
            ),
            metadata=ME,
        )
    ).endpoint
    assert cleared.rate_limit.requests == 0 and cleared.order == pb.DELIVERY_ORDER_UNORDERED


async def test_bad_rate_limits_and_orders_are_refused_by_field(registry):
    for rate_limit, field in [
        (pb.RateLimit(requests=10), "endpoint.rate_limit.period"),
        (pb.RateLimit(requests=-1, period=pb.RATE_LIMIT_PERIOD_SECOND), "endpoint.rate_limit.requests"),
        (pb.RateLimit(requests=100_001, period=pb.RATE_LIMIT_PERIOD_MINUTE), "endpoint.rate_limit.requests"),
        (pb.RateLimit(period=pb.RATE_LIMIT_PERIOD_SECOND), "endpoint.rate_limit.requests"),
        (pb.RateLimit(requests=5, period=7), "endpoint.rate_limit.period"),
    ]:
        call = registry.endpoints.CreateEndpoint(
            pb.CreateEndpointRequest(endpoint=webhook(rate_limit=rate_limit)), metadata=ME
        )
        await expect_invalid(call, field)
    call = registry.endpoints.CreateEndpoint(pb.CreateEndpointRequest(endpoint=webhook(order=9)), metadata=ME)
    await expect_invalid(call, "endpoint.order")
