"""The headers an endpoint may not set (services.common.headers.RESERVED_HEADERS) are refused when it
is written, each named the way the request names it; any other header is accepted."""

from __future__ import annotations

from hooks.registry.v1 import endpoints_pb2 as pb
from services.common.headers import RESERVED_HEADERS
from services.common.identity import identity_metadata
from tests.helpers.registry import expect_invalid

ME = identity_metadata("acct-reserved")


async def test_every_reserved_header_is_refused_in_any_case(registry):
    for name in sorted(RESERVED_HEADERS):
        for spelling in (name, name.title()):
            call = registry.endpoints.CreateEndpoint(
                pb.CreateEndpointRequest(
                    endpoint=pb.Endpoint(
                        name="ops", type=pb.ENDPOINT_TYPE_WEBHOOK, target="https://x.example", headers={spelling: "v"}
                    )
                ),
                metadata=ME,
            )
            violations = await expect_invalid(call, f"endpoint.headers[{spelling!r}]")
            assert "cannot be overridden" in violations[f"endpoint.headers[{spelling!r}]"]


def test_the_sender_set_and_connection_headers_are_all_reserved():
    # What the sender sets on every delivery, and what belongs to the connection or the framing.
    assert {"user-agent", "content-type", "webhook-id", "webhook-timestamp", "webhook-signature"} <= RESERVED_HEADERS
    assert {
        "traceparent",
        "tracestate",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
    } <= RESERVED_HEADERS
    assert "authorization" not in RESERVED_HEADERS  # what endpoints' headers are for


async def test_other_headers_are_accepted(registry):
    endpoint = await registry.endpoint("acct-reserved", "ok", headers={"Authorization": "Bearer t", "X-Team": "ops"})
    assert sorted(endpoint.header_hints) == ["Authorization", "X-Team"]
