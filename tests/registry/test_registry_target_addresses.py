"""Targets the sender would refuse are refused when they are written (services/common/network_policy.py):
a literal address or a name that resolves only to addresses off the public internet is
INVALID_ARGUMENT naming `endpoint.target`, at create and at update, over gRPC and through the gateway
(400), unless the operator allows the network (HOOKS_SENDER_ALLOWED_NETWORKS, read by registry and
sender alike). A name that does not resolve is accepted (the sender judges it when it connects);
e-mail endpoints are judged by the recipient domains instead."""

from __future__ import annotations

import pytest_asyncio
from google.protobuf import field_mask_pb2

from gateway.settings import GatewaySettings
from hooks.registry.v1 import endpoints_pb2 as pb
from services.common.channels import channel
from services.common.identity import identity_metadata
from tests.helpers.gateway import identity, running_gateway
from tests.helpers.registry import Registry, expect_invalid, running_registry

ACCOUNT = "acct-1"
ME = identity_metadata(ACCOUNT)


@pytest_asyncio.fixture
async def strict(database_url):
    """A registry with the production default: no inner network allowed."""
    async with running_registry(database_url, sender_allowed_networks="") as (server, port):
        async with channel(f"127.0.0.1:{port}") as ch:
            yield Registry(port, server, ch)


def create(registry: Registry, name: str, target: str, kind: pb.EndpointType = pb.ENDPOINT_TYPE_WEBHOOK):
    return registry.endpoints.CreateEndpoint(
        pb.CreateEndpointRequest(endpoint=pb.Endpoint(name=name, type=kind, target=target, enabled=True)),
        metadata=ME,
    )


def update_target(registry: Registry, endpoint_id: str, target: str):
    return registry.endpoints.UpdateEndpoint(
        pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=endpoint_id, target=target),
            update_mask=field_mask_pb2.FieldMask(paths=["target"]),
        ),
        metadata=ME,
    )


async def test_literal_inner_addresses_are_refused_at_create_saying_why(strict):
    for target, kind in (
        ("http://10.0.0.1/hook", "a private address"),
        ("https://127.0.0.1:8443/hook", "a loopback address"),
        ("http://[::1]/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://[::ffff:192.168.0.1]/hook", "a private address"),
    ):
        violations = await expect_invalid(create(strict, "inner", target), "endpoint.target")
        description = violations["endpoint.target"]
        assert kind in description, (target, description)
        assert "HOOKS_SENDER_ALLOWED_NETWORKS" in description, description
    # Every kind of endpoint that posts to its target is judged, not only webhooks.
    await expect_invalid(
        create(strict, "slack", "https://10.1.1.1/services/x", pb.ENDPOINT_TYPE_SLACK), "endpoint.target"
    )
    listed = await strict.endpoints.ListEndpoints(pb.ListEndpointsRequest(), metadata=ME)
    assert list(listed.endpoints) == []


async def test_a_name_resolving_to_an_inner_address_is_refused_without_showing_the_address(strict):
    """`localhost` resolves to loopback (/etc/hosts): refused, the tenant told what kind of address
    it resolves to, never the address (it would map the operator's network)."""
    violations = await expect_invalid(create(strict, "named", "http://localhost:8080/hook"), "endpoint.target")
    description = violations["endpoint.target"]
    assert description.startswith("localhost resolves to a loopback address"), description
    assert "127.0.0.1" not in description and "::1" not in description


async def test_a_name_that_does_not_resolve_is_accepted(strict):
    """.invalid never resolves (RFC 6761): DNS may just be late, so the sender judges it when it connects."""
    created = await create(strict, "later", "https://hooks.nowhere.invalid/x")
    assert created.endpoint.target == "https://hooks.nowhere.invalid/x"


async def test_refused_at_update_too_and_nothing_changes(strict):
    endpoint = (await create(strict, "hook", "https://hooks.nowhere.invalid/x")).endpoint
    for target in ("http://192.168.1.20/x", "http://localhost/x"):
        await expect_invalid(update_target(strict, endpoint.id, target), "endpoint.target")
    got = await strict.endpoints.GetEndpoint(pb.GetEndpointRequest(id=endpoint.id), metadata=ME)
    assert got.endpoint.target == "https://hooks.nowhere.invalid/x"
    # An update that does not touch the target does not judge it again.
    renamed = await strict.endpoints.UpdateEndpoint(
        pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=endpoint.id, name="renamed"), update_mask=field_mask_pb2.FieldMask(paths=["name"])
        ),
        metadata=ME,
    )
    assert renamed.endpoint.name == "renamed"


async def test_networks_the_operator_allows_are_accepted(database_url):
    async with running_registry(database_url, sender_allowed_networks="10.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16") as (
        server,
        port,
    ):
        async with channel(f"127.0.0.1:{port}") as ch:
            registry = Registry(port, server, ch)
            for n, target in enumerate(("http://10.2.3.4/x", "http://localhost:9/x", "http://169.254.10.10/x")):
                assert (await create(registry, f"allowed {n}", target)).endpoint.target == target
            endpoint = (await create(registry, "moved", "http://10.2.3.4/y")).endpoint
            assert (await update_target(registry, endpoint.id, "http://127.0.0.1:9/y")).endpoint.target.startswith(
                "http://127.0.0.1"
            )
            # Metadata stays shut inside a wider allowed network; other networks stay refused.
            violations = await expect_invalid(
                create(registry, "metadata", "http://169.254.169.254/"), "endpoint.target"
            )
            assert "metadata" in violations["endpoint.target"]
            await expect_invalid(create(registry, "other", "http://192.168.0.1/"), "endpoint.target")


async def test_email_endpoints_are_judged_by_their_domain_not_by_addresses(strict):
    mail = await create(strict, "mail", "ops@internal.example", pb.ENDPOINT_TYPE_EMAIL)
    assert mail.endpoint.target == "ops@internal.example"


async def test_through_the_gateway_a_refused_target_is_400_naming_the_field(sqlite_url):
    async with running_registry(sqlite_url, sender_allowed_networks="") as (_, port):
        async with running_gateway(GatewaySettings(registry_target=f"127.0.0.1:{port}")) as client:
            body = {"name": "inner", "type": "ENDPOINT_TYPE_WEBHOOK", "target": "http://10.0.0.1/x", "enabled": True}
            response = await client.post("/api/hooks/v1/endpoints", json=body, headers=identity(ACCOUNT))
            assert response.status_code == 400, response.text
            [violation] = response.json()["details"][0]["fieldViolations"]
            assert violation["field"] == "endpoint.target"
            assert "10.0.0.1 is a private address" in violation["description"]

            body["target"] = "https://hooks.nowhere.invalid/x"
            created = await client.post("/api/hooks/v1/endpoints", json=body, headers=identity(ACCOUNT))
            assert created.status_code == 200, created.text
            endpoint_id = created.json()["id"]
            response = await client.patch(
                f"/api/hooks/v1/endpoints/{endpoint_id}",
                params={"updateMask": "target"},
                json={"target": "http://localhost/x"},
                headers=identity(ACCOUNT),
            )
            assert response.status_code == 400, response.text
            [violation] = response.json()["details"][0]["fieldViolations"]
            assert violation["field"] == "endpoint.target" and "loopback" in violation["description"]
