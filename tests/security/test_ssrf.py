"""The SSRF guard: only globally routable addresses, judged in every form an IPv6 address can carry
an IPv4 one; metadata stays shut inside allowed networks; and a tenant whose target is refused learns
"target address not allowed", nothing about what its name resolved to (that goes to the log)."""

from __future__ import annotations

import ipaddress
import uuid

import pytest
from google.protobuf import struct_pb2

from hooks.events.v1 import event_pb2
from hooks.registry.v1 import endpoints_pb2, endpoints_pb2_grpc
from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
from services.common.channels import channel
from services.common.identity import identity_metadata
from services.common.network_policy import NetworkPolicy
from services.common.settings import KafkaSettings
from services.sender.network_policy import REFUSED_TEXT
from services.sender.server import build_server
from services.sender.settings import SenderSettings
from tests.helpers.registry import running_registry
from tests.helpers.waiting import eventually


def networks(*cidrs: str) -> list:
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


@pytest.mark.parametrize(
    ("address", "why"),
    [
        # The gaps: site-local, and 6to4 / NAT64 / Teredo / mapped / compatible forms of inner IPv4.
        ("fec0::1", "site-local"),
        ("2002:a9fe:a9fe::", "169.254.169.254"),  # 6to4 of the metadata address
        ("2002:a9fe:a9fe:1234::1", "169.254.169.254"),
        ("2002:7f00:1::", "127.0.0.1"),  # 6to4 of loopback
        ("2002:0a00:0001::", "10.0.0.1"),  # 6to4 of a private address
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 (DNS64) of the metadata address
        ("64:ff9b::7f00:1", "loopback"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("::127.0.0.1", "IPv4-compatible"),
        # What Python 3.11's is_global lets through.
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("192.0.0.192", "metadata"),  # Oracle Cloud
        ("192.0.0.8", "IETF"),
        ("64:ff9b:1::a", "local-use"),
        ("198.18.0.1", "benchmarking"),
        ("192.0.2.1", "documentation"),
        ("2001:db8::1", "documentation"),
        # The classics.
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.10", "private"),
        ("100.64.0.1", "shared"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fd12:3456::1", "unique local"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
    ],
)
def test_addresses_off_the_public_internet_are_refused(address, why):
    refusal = NetworkPolicy().check(address)
    assert refusal is not None, address
    assert why in refusal, refusal


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "2002:0808:0808::1", "64:ff9b::808:808", "::ffff:8.8.8.8"],
)
def test_public_addresses_pass_in_every_form(address):
    """6to4 and NAT64 of a public IPv4 address are as public as it is (an IPv6-only cluster with DNS64
    reaches every IPv4 webhook through 64:ff9b::/96)."""
    assert NetworkPolicy().check(address) is None


def test_allowed_networks_apply_to_the_address_connected_to_after_unwrapping():
    # Allowing all IPv6 does not open the IPv4 addresses IPv6 forms carry.
    everything_v6 = NetworkPolicy(networks("::/0"))
    assert everything_v6.check("fd12::1") is None
    for address in ("::ffff:169.254.169.254", "::ffff:127.0.0.1", "2002:a9fe:a9fe::", "64:ff9b::a00:1"):
        assert everything_v6.check(address) is not None, address
    # Allowing a private IPv4 network opens it in its mapped and NAT64 forms too.
    private = NetworkPolicy(networks("10.0.0.0/8"))
    for address in ("10.1.2.3", "::ffff:10.1.2.3", "64:ff9b::a01:203"):
        assert private.check(address) is None, address
    assert private.check("192.168.0.1") is not None


def test_metadata_stays_refused_inside_a_wider_allowed_network_unless_named_alone():
    wide = NetworkPolicy(networks("169.254.0.0/16", "100.64.0.0/10"))
    assert wide.check("169.254.10.10") is None
    for address in ("169.254.169.254", "::ffff:169.254.169.254", "100.100.100.200"):
        assert "metadata" in (wide.check(address) or ""), address
    assert NetworkPolicy(networks("169.254.169.254/32")).check("169.254.169.254") is None


# ---- what the tenant reads --------------------------------------------------------------------------


async def test_a_refused_target_tells_the_tenant_only_that_it_is_not_allowed(sqlite_url, tmp_path, capfd):
    """A real delivery to a name that resolves to loopback, and to the metadata address: the delivery's
    last_error and its attempt's error say "target address not allowed" — neither the address the name
    resolved to nor why — while the log names both for operators."""
    account = f"acct-{uuid.uuid4().hex[:8]}"
    # The registry lets these targets through (as if their names resolved elsewhere when they were
    # written); the sender, which allows none of them, refuses them when it connects.
    registry_allows = "127.0.0.0/8,169.254.169.254/32"
    async with running_registry(sqlite_url, sender_allowed_networks=registry_allows) as (_registry, registry_port):
        registry_target = f"127.0.0.1:{registry_port}"
        sender = await build_server(
            SenderSettings(
                sender_database_url=f"sqlite:///{tmp_path / 'sender.db'}",
                registry_target=registry_target,
                sender_retry_schedule="50ms",
                sender_poll_interval_seconds=0.05,
                shutdown_grace_seconds=0.5,
            ),
            KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        )
        port = await sender.start("127.0.0.1:0")
        try:
            async with channel(registry_target) as registry_channel, channel(f"127.0.0.1:{port}") as sender_channel:
                endpoints = endpoints_pb2_grpc.EndpointServiceStub(registry_channel)
                deliveries = deliveries_pb2_grpc.DeliveryServiceStub(sender_channel)
                for target, inner in (
                    ("http://localhost:9/hook", "127.0.0.1"),
                    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
                ):
                    created = await endpoints.CreateEndpoint(
                        endpoints_pb2.CreateEndpointRequest(
                            endpoint=endpoints_pb2.Endpoint(
                                name=f"inner {uuid.uuid4().hex[:6]}",
                                type=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK,
                                target=target,
                                enabled=True,
                            )
                        ),
                        metadata=identity_metadata(account),
                    )
                    event = event_pb2.Event(
                        id=f"evt-{uuid.uuid4().hex}",
                        application="hooks",
                        event_type="test",
                        level="",
                        account_id=account,
                        message=struct_pb2.Value(string_value="hello"),
                    )
                    event.timestamp.FromJsonString("2026-11-27T10:00:00Z")
                    request = deliveries_pb2.DeliverRequest(
                        request_id=uuid.uuid4().hex, event=event, endpoint_ids=[created.endpoint.id]
                    )
                    [response] = [answer async for answer in deliveries.Deliver(iter([request]), timeout=30)]

                    async def failed(delivery_id=response.delivery_ids[0]):
                        answer = await deliveries.GetDelivery(
                            deliveries_pb2.GetDeliveryRequest(id=delivery_id),
                            metadata=identity_metadata(account),
                        )
                        return (
                            answer.delivery if answer.delivery.status == deliveries_pb2.DELIVERY_STATUS_FAILED else None
                        )

                    delivery = await eventually(failed, message=f"the delivery to {target} failing")
                    assert delivery.last_error == REFUSED_TEXT == "target address not allowed"
                    assert [attempt.error for attempt in delivery.attempts] == [REFUSED_TEXT]
                    logged = capfd.readouterr()
                    assert "delivery target refused" in logged.out + logged.err
                    assert inner in logged.out + logged.err, "operators find the resolved address in the log"
        finally:
            await sender.stop(0.5)
