"""What a hostile or careless caller sends is refused up front, naming the field, on SQLite and
PostgreSQL alike: control characters (NUL, which PostgreSQL's text cannot hold, would otherwise fail
the query and be taken for an outage), patterns that a trailing newline slips through, header values
that crash every delivery attempt, and credentials in a target URL that would be shown back."""

from __future__ import annotations

import base64
import json

import grpc
from google.protobuf import field_mask_pb2

from hooks.registry.v1 import applications_pb2 as apps_pb
from hooks.registry.v1 import endpoints_pb2 as ep_pb
from hooks.registry.v1 import filters_pb2 as f_pb
from hooks.registry.v1 import routing_pb2 as r_pb
from services.common.identity import identity_metadata
from tests.helpers.registry import expect_error, expect_invalid

ME = identity_metadata("acct-1")
#: A NUL, an escape sequence, DEL and a C1 control: none may be stored or looked up.
CONTROLS = ["\x00", "\x1b[31m", "\x7f", "\x85"]


def endpoint(**fields) -> ep_pb.CreateEndpointRequest:
    fields.setdefault("name", "e")
    fields.setdefault("type", ep_pb.ENDPOINT_TYPE_WEBHOOK)
    fields.setdefault("target", "https://hooks.example.com/x")
    return ep_pb.CreateEndpointRequest(endpoint=ep_pb.Endpoint(**fields))


async def test_resolve_routes_refuses_control_characters_before_any_query(registry):
    await registry.endpoint("acct-1", "ops")
    good = {"account_id": "acct-1", "application": "hooks", "event_type": "test", "level": ""}
    for field in good:
        for control in CONTROLS:
            request = r_pb.ResolveRoutesRequest(**{**good, field: f"{good[field]}{control}x"})
            violations = await expect_invalid(registry.routing.ResolveRoutes(request), field)
            assert "control character" in violations[field]
    await expect_invalid(
        registry.routing.ResolveRoutes(r_pb.ResolveRoutesRequest(**{**good, "account_id": "a" * 65})), "account_id"
    )
    # The registry is fine afterwards: the refusals were the caller's, not an outage.
    assert (await registry.routing.ResolveRoutes(r_pb.ResolveRoutesRequest(**good))).registered


async def test_no_stored_text_takes_a_control_character(registry):
    for control in CONTROLS:
        app = apps_pb.Application(name="shop", title=f"Shop{control}")
        app.event_types.add(id="order", title=f"Order{control}").levels.add(id="big", title=f"Big{control}")
        await expect_invalid(
            registry.apps.RegisterApplication(apps_pb.RegisterApplicationRequest(application=app)),
            "application.title",
            "application.event_types[0].title",
            "application.event_types[0].levels[0].title",
        )
        await expect_invalid(
            registry.endpoints.CreateEndpoint(endpoint(name=f"ops{control}"), metadata=ME), "endpoint.name"
        )
        await expect_invalid(
            registry.endpoints.CreateEndpoint(endpoint(description=f"pager{control}"), metadata=ME),
            "endpoint.description",
        )
        await expect_invalid(
            registry.endpoints.CreateEndpoint(endpoint(target=f"https://hooks.example.com/{control}"), metadata=ME),
            "endpoint.target",
        )
        await expect_invalid(
            registry.endpoints.CreateEndpoint(
                endpoint(ca_certificate=f"-----BEGIN CERTIFICATE-----\n{control}\n-----END CERTIFICATE-----\n"),
                metadata=ME,
            ),
            "endpoint.ca_certificate",
        )
        await expect_invalid(
            registry.filters.CreateFilter(
                f_pb.CreateFilterRequest(filter=f_pb.Filter(name=f"f{control}")), metadata=ME
            ),
            "filter.name",
        )
    # Nothing was stored.
    assert not (await registry.endpoints.ListEndpoints(ep_pb.ListEndpointsRequest(), metadata=ME)).endpoints
    assert [
        a.name
        for a in (await registry.apps.ListApplications(apps_pb.ListApplicationsRequest(), metadata=ME)).applications
    ] == ["hooks"]
    # Free text for people may span lines.
    made = await registry.endpoint("acct-1", "ops", description="first line\n\tsecond line")
    assert made.description == "first line\n\tsecond line"


async def test_lookups_with_control_characters_are_refused_not_taken_for_an_outage(registry):
    """Every string that would reach a query (ids, searches, references, page tokens) is checked first."""
    mine = await registry.endpoint("acct-1", "ops")
    nul = "x\x00y"
    await expect_invalid(registry.endpoints.GetEndpoint(ep_pb.GetEndpointRequest(id=nul), metadata=ME), "id")
    await expect_invalid(registry.endpoints.DeleteEndpoint(ep_pb.DeleteEndpointRequest(id=nul), metadata=ME), "id")
    await expect_invalid(
        registry.endpoints.UpdateEndpoint(ep_pb.UpdateEndpointRequest(endpoint=ep_pb.Endpoint(id=nul)), metadata=ME),
        "endpoint.id",
    )
    await expect_invalid(
        registry.endpoints.ListEndpoints(ep_pb.ListEndpointsRequest(name_contains=nul), metadata=ME), "name_contains"
    )
    await expect_invalid(registry.filters.GetFilter(f_pb.GetFilterRequest(id=nul), metadata=ME), "id")
    await expect_invalid(
        registry.filters.ListFilters(f_pb.ListFiltersRequest(endpoint_id=nul), metadata=ME), "endpoint_id"
    )
    await expect_invalid(registry.apps.GetApplication(apps_pb.GetApplicationRequest(name=nul), metadata=ME), "name")
    await expect_invalid(
        registry.routing.GetDeliveryTarget(r_pb.GetDeliveryTargetRequest(endpoint_id=nul)), "endpoint_id"
    )
    await expect_invalid(
        registry.routing.DisableEndpoint(r_pb.DisableEndpointRequest(endpoint_id=mine.id, reason=nul)), "reason"
    )
    await expect_invalid(
        registry.filters.CreateFilter(
            f_pb.CreateFilterRequest(
                filter=f_pb.Filter(
                    applications=[nul],
                    event_types=[f_pb.EventTypeRef(application=nul, event_type="x")],
                    levels=[f_pb.LevelRef(application=nul, event_type="x", level="y")],
                    endpoint_ids=[mine.id, nul],
                )
            ),
            metadata=ME,
        ),
        "filter.applications[0]",
        "filter.event_types[0]",
        "filter.levels[0]",
        "filter.endpoint_ids[1]",
    )
    # Page tokens are not signed: what they carry is input like any other.
    for after in ([nul, mine.id], "[" * 1400):
        document = json.dumps({"a": after, "q": "x"}) if isinstance(after, list) else after
        token = base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")
        await expect_invalid(
            registry.endpoints.ListEndpoints(ep_pb.ListEndpointsRequest(page_token=token), metadata=ME), "page_token"
        )
    assert [
        e.id for e in (await registry.endpoints.ListEndpoints(ep_pb.ListEndpointsRequest(), metadata=ME)).endpoints
    ] == [mine.id]


async def test_patterns_refuse_a_trailing_newline(registry):
    cases = [
        (("shop\n", "order", "big"), "application.name"),
        (("shop", "order\n", "big"), "application.event_types[0].id"),
        (("shop", "order", "big\n"), "application.event_types[0].levels[0].id"),
    ]
    for (name, event_type, level), field in cases:
        app = apps_pb.Application(name=name, title="Shop")
        app.event_types.add(id=event_type, title="Order").levels.add(id=level, title="Big")
        violations = await expect_invalid(
            registry.apps.RegisterApplication(apps_pb.RegisterApplicationRequest(application=app))
        )
        assert list(violations) == [field]
    await expect_invalid(
        registry.endpoints.CreateEndpoint(endpoint(headers={"X-Team\n": "ops"}), metadata=ME),
        "endpoint.headers['X-Team\\n']",
    )
    await expect_invalid(
        registry.endpoints.CreateEndpoint(
            endpoint(type=ep_pb.ENDPOINT_TYPE_EMAIL, target="ops@example.com\n"), metadata=ME
        ),
        "endpoint.target",
    )
    assert not (await registry.endpoints.ListEndpoints(ep_pb.ListEndpointsRequest(), metadata=ME)).endpoints


async def test_header_values_hold_no_control_character_but_tab(registry):
    for control in [*CONTROLS, "\r", "\n", "\x0b", "\x0c"]:
        violations = await expect_invalid(
            registry.endpoints.CreateEndpoint(endpoint(headers={"X-Team": f"ops{control}x"}), metadata=ME),
            "endpoint.headers['X-Team']",
        )
        assert "control character" in violations["endpoint.headers['X-Team']"]
    made = await registry.endpoint("acct-1", "ops", headers={"X-Team": "ops\tpager"})
    target = await registry.routing.GetDeliveryTarget(r_pb.GetDeliveryTargetRequest(endpoint_id=made.id))
    assert dict(target.endpoint.headers) == {"X-Team": "ops\tpager"}
    # An update is checked the same way.
    await expect_invalid(
        registry.endpoints.UpdateEndpoint(
            ep_pb.UpdateEndpointRequest(
                endpoint=ep_pb.Endpoint(id=made.id, headers={"X-Team": "a\x01b"}),
                update_mask=field_mask_pb2.FieldMask(paths=["headers"]),
            ),
            metadata=ME,
        ),
        "endpoint.headers['X-Team']",
    )


async def test_targets_with_credentials_are_refused_without_echoing_them(registry):
    for target in [
        "https://user:s3cret-pw@hooks.example.com/x",
        "https://token-abc@hooks.example.com/x",
        "http://:s3cret-pw@hooks.example.com/",
    ]:
        violations = await expect_invalid(
            registry.endpoints.CreateEndpoint(endpoint(target=target), metadata=ME), "endpoint.target"
        )
        description = violations["endpoint.target"]
        assert "credentials" in description and "header" in description
        assert "s3cret-pw" not in description and "token-abc" not in description
    made = await registry.endpoint("acct-1", "ops")
    error = await expect_error(
        registry.endpoints.UpdateEndpoint(
            ep_pb.UpdateEndpointRequest(
                endpoint=ep_pb.Endpoint(id=made.id, target="https://user:s3cret-pw@hooks.example.com/x"),
                update_mask=field_mask_pb2.FieldMask(paths=["target"]),
            ),
            metadata=ME,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "s3cret-pw" not in error.details()
    got = (await registry.endpoints.GetEndpoint(ep_pb.GetEndpointRequest(id=made.id), metadata=ME)).endpoint
    assert got.target == made.target
    # An '@' in the path or query is not a credential.
    assert (
        await registry.endpoint("acct-1", "at", target="https://hooks.example.com/to/ops@example.com?who=a@b")
    ).name == "at"
