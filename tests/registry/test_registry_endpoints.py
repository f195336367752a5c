"""Endpoints: validation per type, write-only secrets, search and pagination, update masks, deletion."""

from __future__ import annotations

import base64

import certifi
import grpc
from google.protobuf import field_mask_pb2
from standardwebhooks import Webhook

from hooks.registry.v1 import endpoints_pb2 as pb
from hooks.registry.v1 import filters_pb2 as f_pb
from hooks.registry.v1 import routing_pb2 as r_pb
from services.common.identity import identity_metadata
from tests.helpers.registry import expect_error, expect_invalid

ME = identity_metadata("acct-1")


def first_certificate() -> str:
    bundle = open(certifi.where()).read()
    end = "-----END CERTIFICATE-----"
    start = bundle.index("-----BEGIN CERTIFICATE-----")
    return bundle[start : bundle.index(end, start) + len(end)] + "\n"


async def create(registry, **fields):
    return registry.endpoints.CreateEndpoint(pb.CreateEndpointRequest(endpoint=pb.Endpoint(**fields)), metadata=ME)


async def secret_of(registry, endpoint_id: str) -> str:
    target = await registry.routing.GetDeliveryTarget(r_pb.GetDeliveryTargetRequest(endpoint_id=endpoint_id))
    return target.endpoint.secret


async def test_create_generates_a_write_only_secret(registry):
    endpoint = await registry.endpoint("acct-1", "ops", headers={"X-Team": "ops"}, description="pager")
    assert endpoint.id and endpoint.name == "ops" and endpoint.enabled
    assert endpoint.type == pb.ENDPOINT_TYPE_WEBHOOK
    assert not endpoint.headers and dict(endpoint.header_hints) == {"X-Team": ""}  # too short for a hint
    assert endpoint.secret == ""
    secret = await secret_of(registry, endpoint.id)
    assert endpoint.generated_secret == secret  # shown in the creation's answer, once
    assert secret.startswith("whsec_") and 24 <= len(base64.b64decode(secret[6:])) <= 64
    assert endpoint.secret_hint == secret[-4:]
    Webhook(secret)  # the standard library accepts it
    got = (await registry.endpoints.GetEndpoint(pb.GetEndpointRequest(id=endpoint.id), metadata=ME)).endpoint
    assert got.secret == "" and got.secret_hint == secret[-4:]
    listed = (await registry.endpoints.ListEndpoints(pb.ListEndpointsRequest(), metadata=ME)).endpoints
    assert [e.secret for e in listed] == [""]


async def test_given_secret_is_accepted_in_the_standard_shape(registry):
    raw = base64.b64encode(bytes(range(32))).decode()
    with_prefix = await registry.endpoint("acct-1", "a", secret="whsec_" + raw)
    assert await secret_of(registry, with_prefix.id) == "whsec_" + raw
    without_prefix = await registry.endpoint("acct-1", "b", secret=raw)
    assert await secret_of(registry, without_prefix.id) == "whsec_" + raw
    for bad in [
        "whsec_short",
        "whsec_" + base64.b64encode(b"x" * 10).decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
        "not base64 at all",
    ]:
        violations = await expect_invalid(
            await create(registry, name="c", type=pb.ENDPOINT_TYPE_WEBHOOK, target="https://x.example", secret=bad),
            "endpoint.secret",
        )
        assert bad not in violations["endpoint.secret"]  # a secret is never echoed


async def test_types_and_targets(registry):
    for endpoint_type in (
        pb.ENDPOINT_TYPE_WEBHOOK,
        pb.ENDPOINT_TYPE_SLACK,
        pb.ENDPOINT_TYPE_TEAMS,
        pb.ENDPOINT_TYPE_GOOGLE_CHAT,
    ):
        made = await registry.endpoint(
            "acct-1", f"t{endpoint_type}", type=endpoint_type, target="http://127.0.0.1:8080/x"
        )
        assert made.type == endpoint_type
    mail = await registry.endpoint("acct-1", "mail", type=pb.ENDPOINT_TYPE_EMAIL, target="ops@example.com")
    assert mail.target == "ops@example.com"

    await expect_invalid(
        await create(registry, name="u", type=pb.ENDPOINT_TYPE_UNSPECIFIED, target="https://x.example"), "endpoint.type"
    )
    for target in [
        "ftp://x.example/a",
        "https://",
        "not a url",
        "",
        "https://x.example/" + "a" * 2001,
        "mailto:ops@example.com",
    ]:
        await expect_invalid(
            await create(registry, name="u", type=pb.ENDPOINT_TYPE_WEBHOOK, target=target), "endpoint.target"
        )
    for target in ["https://x.example", "ops", "ops@", "a b@example.com"]:
        await expect_invalid(
            await create(registry, name="u", type=pb.ENDPOINT_TYPE_EMAIL, target=target), "endpoint.target"
        )
    await expect_invalid(
        await create(registry, name="", type=pb.ENDPOINT_TYPE_WEBHOOK, target="https://x.example"), "endpoint.name"
    )
    await expect_invalid(
        await create(registry, name="n" * 201, type=pb.ENDPOINT_TYPE_WEBHOOK, target="https://x.example"),
        "endpoint.name",
    )
    await expect_invalid(
        await create(
            registry, name="d", type=pb.ENDPOINT_TYPE_WEBHOOK, target="https://x.example", description="d" * 2001
        ),
        "endpoint.description",
    )


async def test_headers_are_bounded_and_cannot_override_ours(registry):
    for name in ["Host", "content-length", "Webhook-Signature", "Transfer-Encoding", "Connection"]:
        await expect_invalid(
            await create(
                registry, name="h", type=pb.ENDPOINT_TYPE_WEBHOOK, target="https://x.example", headers={name: "v"}
            ),
            f"endpoint.headers[{name!r}]",
        )
    await expect_invalid(
        await create(
            registry, name="h", type=pb.ENDPOINT_TYPE_WEBHOOK, target="https://x.example", headers={"Bad Name": "v"}
        ),
        "endpoint.headers['Bad Name']",
    )
    await expect_invalid(
        await create(
            registry,
            name="h",
            type=pb.ENDPOINT_TYPE_WEBHOOK,
            target="https://x.example",
            headers={"X-A": "line\r\nbreak"},
        ),
        "endpoint.headers['X-A']",
    )
    await expect_invalid(
        await create(
            registry,
            name="h",
            type=pb.ENDPOINT_TYPE_WEBHOOK,
            target="https://x.example",
            headers={f"X-{i}": "v" for i in range(21)},
        ),
        "endpoint.headers",
    )


async def test_ca_certificate_must_parse(registry):
    pem = first_certificate()
    made = await registry.endpoint("acct-1", "tls", ca_certificate=pem)
    assert made.ca_certificate == pem
    await expect_invalid(
        await create(
            registry, name="x", type=pb.ENDPOINT_TYPE_WEBHOOK, target="https://x.example", ca_certificate="hello"
        ),
        "endpoint.ca_certificate",
    )
    broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    await expect_invalid(
        await create(
            registry, name="x", type=pb.ENDPOINT_TYPE_WEBHOOK, target="https://x.example", ca_certificate=broken
        ),
        "endpoint.ca_certificate",
    )


async def test_names_are_unique_per_account(registry):
    await registry.endpoint("acct-1", "ops")
    error = await expect_error(
        await create(registry, name="ops", type=pb.ENDPOINT_TYPE_WEBHOOK, target="https://x.example"),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert "ops" in error.details()
    # Another account may use the same name.
    assert (await registry.endpoint("acct-2", "ops")).name == "ops"


async def test_list_searches_by_name_and_pages(registry):
    for name in ["Alpha-ops", "beta", "gamma-OPS", "delta", "ops_100%"]:
        await registry.endpoint("acct-1", name)
    found = await registry.endpoints.ListEndpoints(pb.ListEndpointsRequest(name_contains="ops"), metadata=ME)
    assert [e.name for e in found.endpoints] == ["Alpha-ops", "gamma-OPS", "ops_100%"]
    literal = await registry.endpoints.ListEndpoints(pb.ListEndpointsRequest(name_contains="0%"), metadata=ME)
    assert [e.name for e in literal.endpoints] == ["ops_100%"]
    names, token = [], ""
    while True:
        page = await registry.endpoints.ListEndpoints(
            pb.ListEndpointsRequest(page_size=2, page_token=token), metadata=ME
        )
        assert len(page.endpoints) <= 2
        names += [e.name for e in page.endpoints]
        token = page.next_page_token
        if not token:
            break
    assert names == ["Alpha-ops", "beta", "delta", "gamma-OPS", "ops_100%"]
    assert (
        len((await registry.endpoints.ListEndpoints(pb.ListEndpointsRequest(page_size=1000), metadata=ME)).endpoints)
        == 5
    )
    # Above the one cap is refused, as the gateway refuses it (services.common.paging).
    await expect_invalid(
        registry.endpoints.ListEndpoints(pb.ListEndpointsRequest(page_size=5000), metadata=ME), "page_size"
    )
    await expect_invalid(
        registry.endpoints.ListEndpoints(pb.ListEndpointsRequest(page_size=-5), metadata=ME), "page_size"
    )
    await expect_invalid(
        registry.endpoints.ListEndpoints(pb.ListEndpointsRequest(page_token="%%%garbled"), metadata=ME), "page_token"
    )
    first = await registry.endpoints.ListEndpoints(pb.ListEndpointsRequest(page_size=1), metadata=ME)
    # A token only works for the query it came from.
    await expect_invalid(
        registry.endpoints.ListEndpoints(
            pb.ListEndpointsRequest(page_token=first.next_page_token, name_contains="ops"), metadata=ME
        ),
        "page_token",
    )


async def test_update_with_masks(registry):
    endpoint = await registry.endpoint("acct-1", "ops", description="old", headers={"X-A": "1"})
    secret = await secret_of(registry, endpoint.id)

    # Only the masked field changes.
    changed = await registry.endpoints.UpdateEndpoint(
        pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=endpoint.id, description="new", name="ignored"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        metadata=ME,
    )
    assert changed.endpoint.description == "new" and changed.endpoint.name == "ops"
    assert dict(changed.endpoint.header_hints) == {"X-A": ""}
    assert await secret_of(registry, endpoint.id) == secret

    # An empty mask replaces every writable field; an empty secret, or no headers, then keeps the
    # current ones (their values are never shown, so a caller cannot send them back).
    replaced = await registry.endpoints.UpdateEndpoint(
        pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=endpoint.id, name="ops2", target="https://other.example/x", enabled=True)
        ),
        metadata=ME,
    )
    assert replaced.endpoint.name == "ops2" and replaced.endpoint.description == ""
    assert dict(replaced.endpoint.header_hints) == {"X-A": ""}
    assert replaced.endpoint.target == "https://other.example/x"
    assert await secret_of(registry, endpoint.id) == secret

    # Naming `secret` with no value rotates it; with a value sets it.
    await registry.endpoints.UpdateEndpoint(
        pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=endpoint.id), update_mask=field_mask_pb2.FieldMask(paths=["secret"])
        ),
        metadata=ME,
    )
    rotated = await secret_of(registry, endpoint.id)
    assert rotated != secret and rotated.startswith("whsec_")

    for path in ["nonsense", "id", "secret_hint", "create_time", "type"]:
        violations = await expect_invalid(
            registry.endpoints.UpdateEndpoint(
                pb.UpdateEndpointRequest(
                    endpoint=pb.Endpoint(id=endpoint.id), update_mask=field_mask_pb2.FieldMask(paths=[path])
                ),
                metadata=ME,
            ),
            "update_mask",
        )
        assert path in violations["update_mask"]
    await expect_invalid(
        registry.endpoints.UpdateEndpoint(
            pb.UpdateEndpointRequest(
                endpoint=pb.Endpoint(
                    id=endpoint.id, type=pb.ENDPOINT_TYPE_SLACK, name="ops2", target="https://x.example"
                )
            ),
            metadata=ME,
        ),
        "endpoint.type",
    )
    await expect_invalid(
        registry.endpoints.UpdateEndpoint(
            pb.UpdateEndpointRequest(
                endpoint=pb.Endpoint(id=endpoint.id, target="ftp://x"),
                update_mask=field_mask_pb2.FieldMask(paths=["target"]),
            ),
            metadata=ME,
        ),
        "endpoint.target",
    )
    await expect_invalid(
        registry.endpoints.UpdateEndpoint(pb.UpdateEndpointRequest(endpoint=pb.Endpoint()), metadata=ME), "endpoint.id"
    )
    await expect_error(
        registry.endpoints.UpdateEndpoint(
            pb.UpdateEndpointRequest(endpoint=pb.Endpoint(id="missing", name="x", target="https://x.example")),
            metadata=ME,
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    # A failed update changed nothing.
    got = (await registry.endpoints.GetEndpoint(pb.GetEndpointRequest(id=endpoint.id), metadata=ME)).endpoint
    assert got.name == "ops2" and got.target == "https://other.example/x"

    # Renaming onto another endpoint's name.
    await registry.endpoint("acct-1", "taken")
    await expect_error(
        registry.endpoints.UpdateEndpoint(
            pb.UpdateEndpointRequest(
                endpoint=pb.Endpoint(id=endpoint.id, name="taken"), update_mask=field_mask_pb2.FieldMask(paths=["name"])
            ),
            metadata=ME,
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )


async def headers_of(registry, endpoint_id: str) -> dict[str, str]:
    target = await registry.routing.GetDeliveryTarget(r_pb.GetDeliveryTargetRequest(endpoint_id=endpoint_id))
    return dict(target.endpoint.headers)


def update_headers(registry, endpoint_id: str, paths: list[str], headers: dict[str, str] | None = None):
    return registry.endpoints.UpdateEndpoint(
        pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=endpoint_id, headers=headers or {}),
            update_mask=field_mask_pb2.FieldMask(paths=paths),
        ),
        metadata=ME,
    )


async def test_header_values_are_write_only_and_updated_by_name(registry):
    token = "Bearer 0123456789abcdef"
    endpoint = await registry.endpoint("acct-1", "ops", headers={"Authorization": token, "X-Team": "ops"})
    assert not endpoint.headers and dict(endpoint.header_hints) == {"Authorization": "cdef", "X-Team": ""}
    got = (await registry.endpoints.GetEndpoint(pb.GetEndpointRequest(id=endpoint.id), metadata=ME)).endpoint
    [listed] = (await registry.endpoints.ListEndpoints(pb.ListEndpointsRequest(), metadata=ME)).endpoints
    for seen in (got, listed):
        assert not seen.headers and dict(seen.header_hints) == {"Authorization": "cdef", "X-Team": ""}
        assert token not in str(seen)
    disabled = await registry.routing.DisableEndpoint(
        r_pb.DisableEndpointRequest(endpoint_id=endpoint.id, reason="gone")
    )
    assert not disabled.endpoint.headers

    # headers.<name>: that header alone, in any case; the others keep values the caller never resends.
    updated = await update_headers(registry, endpoint.id, ["headers.x-team"], {"X-Team": "sre"})
    assert dict(updated.endpoint.header_hints) == {"Authorization": "cdef", "X-Team": ""}
    assert await headers_of(registry, endpoint.id) == {"Authorization": token, "X-Team": "sre"}
    await update_headers(
        registry, endpoint.id, ["headers.X-Extra", "headers.`x-team`"], {"x-extra": "1", "X-Team": "dev"}
    )
    assert await headers_of(registry, endpoint.id) == {"Authorization": token, "x-extra": "1", "X-Team": "dev"}
    # Named but absent from the map: removed. Present but not named: left alone (the mask decides).
    await update_headers(registry, endpoint.id, ["headers.x-extra", "description"], {"X-Team": "ignored"})
    assert await headers_of(registry, endpoint.id) == {"Authorization": token, "X-Team": "dev"}
    # `headers`: the whole set is replaced (an empty map leaves none).
    await update_headers(registry, endpoint.id, ["headers"], {"X-Only": "this"})
    assert await headers_of(registry, endpoint.id) == {"X-Only": "this"}
    await update_headers(registry, endpoint.id, ["headers"])
    assert await headers_of(registry, endpoint.id) == {}

    # What a header update may not do: name no header, name a reserved one, exceed the count.
    for path in ["headers.", "headers.bad name"]:
        await expect_invalid(update_headers(registry, endpoint.id, [path]), "update_mask")
    await expect_invalid(
        update_headers(registry, endpoint.id, ["headers.host"], {"Host": "x"}), "endpoint.headers['Host']"
    )
    await update_headers(registry, endpoint.id, ["headers"], {f"X-{i}": "v" for i in range(20)})
    await expect_invalid(update_headers(registry, endpoint.id, ["headers.x-more"], {"X-More": "v"}), "endpoint.headers")
    assert len(await headers_of(registry, endpoint.id)) == 20


async def test_reenabling_clears_the_disabled_reason(registry):
    endpoint = await registry.endpoint("acct-1", "ops")
    disabled = await registry.routing.DisableEndpoint(
        r_pb.DisableEndpointRequest(endpoint_id=endpoint.id, reason="410 Gone")
    )
    assert disabled.changed and not disabled.endpoint.enabled and disabled.endpoint.disabled_reason == "410 Gone"
    again = await registry.routing.DisableEndpoint(
        r_pb.DisableEndpointRequest(endpoint_id=endpoint.id, reason="still gone")
    )
    assert not again.changed and again.endpoint.disabled_reason == "410 Gone"
    enabled = await registry.endpoints.UpdateEndpoint(
        pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=endpoint.id, enabled=True), update_mask=field_mask_pb2.FieldMask(paths=["enabled"])
        ),
        metadata=ME,
    )
    assert enabled.endpoint.enabled and enabled.endpoint.disabled_reason == ""


async def test_delete_removes_the_endpoint_from_filters(registry):
    keep = await registry.endpoint("acct-1", "keep")
    gone = await registry.endpoint("acct-1", "gone")
    both = await registry.filter("acct-1", [gone.id, keep.id])
    only = await registry.filter("acct-1", [gone.id])
    await registry.endpoints.DeleteEndpoint(pb.DeleteEndpointRequest(id=gone.id), metadata=ME)
    await expect_error(
        registry.endpoints.GetEndpoint(pb.GetEndpointRequest(id=gone.id), metadata=ME), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        registry.endpoints.DeleteEndpoint(pb.DeleteEndpointRequest(id=gone.id), metadata=ME), grpc.StatusCode.NOT_FOUND
    )
    assert list(
        (await registry.filters.GetFilter(f_pb.GetFilterRequest(id=both.id), metadata=ME)).filter.endpoint_ids
    ) == [keep.id]
    assert (
        list((await registry.filters.GetFilter(f_pb.GetFilterRequest(id=only.id), metadata=ME)).filter.endpoint_ids)
        == []
    )
    routes = await registry.routing.ResolveRoutes(
        r_pb.ResolveRoutesRequest(account_id="acct-1", application="hooks", event_type="test")
    )
    assert [r.endpoint_id for r in routes.routes] == [keep.id]


async def test_public_calls_need_an_identity(registry):
    for call in [
        registry.endpoints.CreateEndpoint(
            pb.CreateEndpointRequest(endpoint=pb.Endpoint(name="x", type=1, target="https://x.example"))
        ),
        registry.endpoints.GetEndpoint(pb.GetEndpointRequest(id="x")),
        registry.endpoints.ListEndpoints(pb.ListEndpointsRequest()),
        registry.endpoints.UpdateEndpoint(pb.UpdateEndpointRequest(endpoint=pb.Endpoint(id="x"))),
        registry.endpoints.DeleteEndpoint(pb.DeleteEndpointRequest(id="x")),
    ]:
        await expect_error(call, grpc.StatusCode.UNAUTHENTICATED)
    await expect_invalid(registry.endpoints.GetEndpoint(pb.GetEndpointRequest(id=""), metadata=ME), "id")


async def test_a_generated_secret_is_shown_once_in_the_answer_that_made_it(registry):
    given = await registry.endpoint("acct-1", "given", secret="whsec_" + base64.b64encode(b"k" * 32).decode())
    assert given.secret == given.generated_secret == ""  # the owner chose it: never echoed
    endpoint = await registry.endpoint("acct-1", "rotated")
    rotated = (
        await registry.endpoints.UpdateEndpoint(
            pb.UpdateEndpointRequest(endpoint=pb.Endpoint(id=endpoint.id), update_mask={"paths": ["secret"]}),
            metadata=ME,
        )
    ).endpoint
    new = await secret_of(registry, endpoint.id)
    assert rotated.generated_secret == new != endpoint.generated_secret and rotated.secret == ""
    renamed = (
        await registry.endpoints.UpdateEndpoint(
            pb.UpdateEndpointRequest(
                endpoint=pb.Endpoint(id=endpoint.id, name="again"), update_mask={"paths": ["name"]}
            ),
            metadata=ME,
        )
    ).endpoint
    got = (await registry.endpoints.GetEndpoint(pb.GetEndpointRequest(id=endpoint.id), metadata=ME)).endpoint
    assert renamed.generated_secret == got.generated_secret == got.secret == "" and got.secret_hint == new[-4:]
