"""The operator's allowed e-mail recipient domains (HOOKS_EMAIL_ALLOWED_DOMAINS), checked when an e-mail
endpoint's target is written: elsewhere is INVALID_ARGUMENT naming `endpoint.target`. Default: any."""

from __future__ import annotations

import pytest
import pytest_asyncio
from google.protobuf import field_mask_pb2

from hooks.registry.v1 import endpoints_pb2 as pb
from services.common.channels import channel
from services.common.identity import identity_metadata
from services.registry.settings import RegistrySettings
from tests.helpers.registry import Registry, expect_invalid, running_registry

ME = identity_metadata("acct-1")


@pytest_asyncio.fixture
async def strict(database_url):
    """A registry whose operator allows e-mail to example.com and corp.example.org (and subdomains)."""
    async with running_registry(database_url, email_allowed_domains="Example.com, corp.example.org") as (server, port):
        async with channel(f"127.0.0.1:{port}") as ch:
            yield Registry(port, server, ch)


def create_email(registry: Registry, name: str, target: str):
    return registry.endpoints.CreateEndpoint(
        pb.CreateEndpointRequest(
            endpoint=pb.Endpoint(name=name, type=pb.ENDPOINT_TYPE_EMAIL, target=target, enabled=True)
        ),
        metadata=ME,
    )


async def test_email_targets_only_at_allowed_domains(strict):
    for n, target in enumerate(
        ["ops@example.com", "ops@EU.Example.COM", "team@corp.example.org", "x@a.b.corp.example.org"]
    ):
        assert (await create_email(strict, f"ok {n}", target)).endpoint.target == target
    for target in ["ops@example.net", "ops@notexample.com", "ops@example.com.evil.example", "ops@example.org"]:
        violations = await expect_invalid(create_email(strict, "refused", target), "endpoint.target")
        assert "not allowed" in violations["endpoint.target"]
    # Other kinds of endpoint are not e-mail: the policy does not concern them.
    webhook = await strict.endpoint("acct-1", "hook", target="https://elsewhere.example/x")
    assert webhook.target == "https://elsewhere.example/x"

    # An update of the target is checked the same way, and a refused one changes nothing.
    mail = (await create_email(strict, "mail", "ops@example.com")).endpoint
    await expect_invalid(
        strict.endpoints.UpdateEndpoint(
            pb.UpdateEndpointRequest(
                endpoint=pb.Endpoint(id=mail.id, target="ops@example.net"),
                update_mask=field_mask_pb2.FieldMask(paths=["target"]),
            ),
            metadata=ME,
        ),
        "endpoint.target",
    )
    moved = await strict.endpoints.UpdateEndpoint(
        pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=mail.id, target="sre@corp.example.org"),
            update_mask=field_mask_pb2.FieldMask(paths=["target"]),
        ),
        metadata=ME,
    )
    assert moved.endpoint.target == "sre@corp.example.org"


async def test_by_default_any_domain(registry):
    made = await create_email(registry, "anywhere", "ops@anywhere.example")
    assert made.endpoint.target == "ops@anywhere.example"


@pytest.mark.parametrize("value", ["ops@example.com", "example..com", "-example.com", "exa mple.com"])
def test_the_setting_must_list_domain_names(value):
    with pytest.raises(ValueError, match="not a domain name"):
        RegistrySettings(email_allowed_domains=value)
