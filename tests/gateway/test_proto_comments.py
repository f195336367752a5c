"""The OpenAPI descriptions' source: the comments kept in gen/hooks/descriptor_set.binpb."""

from __future__ import annotations

from gateway import proto_comments


def test_the_generated_descriptor_set_carries_the_proto_comments():
    comments = proto_comments.load_comments([proto_comments.hooks_descriptor_set()])
    assert comments["hooks.registry.v1.EndpointService.CreateEndpoint"].startswith("Creates an endpoint.")
    assert comments["hooks.registry.v1.EndpointType.ENDPOINT_TYPE_SLACK"] == "A Slack incoming webhook."
    assert comments["hooks.registry.v1.Endpoint.secret"].startswith("The signing secret: write-only")
    assert comments["hooks.sender.v1.DeliveryStatus.DELIVERY_STATUS_FAILED"].startswith("Given up")


def test_a_fronted_api_brings_its_own_comments(echo_modules):
    echo_pb2, _ = echo_modules
    comments = proto_comments.load_comments([echo_pb2.SOURCE_DESCRIPTOR_SET])
    assert comments and all(name.startswith("testing.v1.") for name in comments)


def test_no_descriptor_sets_mean_no_descriptions():
    assert proto_comments.load_comments([]) == {}
