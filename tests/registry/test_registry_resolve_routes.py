"""ResolveRoutes' answer: endpoint ids (small however large the endpoints are), summaries only for
the dry run, which part of an event is not registered, and a route cache that stays bounded."""

from __future__ import annotations

import asyncio

import certifi

from hooks.registry.v1 import endpoints_pb2 as ep_pb
from hooks.registry.v1 import routing_pb2 as pb
from services.common.channels import channel
from tests.helpers.registry import Registry, running_registry

CA_BYTES = 60 * 1024


def large_ca_bundle() -> str:
    """Real CA certificates, concatenated to about 60 KB (the limit is 64 KiB)."""
    end = "-----END CERTIFICATE-----"
    bundle, position, text = "", 0, open(certifi.where()).read()
    while len(bundle) < CA_BYTES:
        start = text.index("-----BEGIN CERTIFICATE-----", position)
        position = text.index(end, start) + len(end)
        bundle += text[start:position] + "\n"
    return bundle


async def test_a_filter_of_100_large_endpoints_resolves_small(registry):
    """100 endpoints of ~100 KB each (a 60 KB CA bundle, 20 headers of 2,000 characters) in one filter:
    the answer names them by id, far under any message limit; the dry run's summaries carry none of it."""
    ca = large_ca_bundle()
    assert CA_BYTES <= len(ca) <= 64 * 1024
    headers = {f"X-Large-{i}": chr(ord("a") + i) * 2000 for i in range(20)}
    made = await asyncio.gather(
        *(
            registry.endpoint("acct-1", f"large-{i:03}", ca_certificate=ca, headers=headers, description=f"number {i}")
            for i in range(100)
        )
    )
    flt = await registry.filter("acct-1", [e.id for e in made])
    assert len(ca) * 100 + 40_000 * 100 > 4 * 1024 * 1024  # whole endpoints would not fit in one answer

    answer = await registry.routing.ResolveRoutes(
        pb.ResolveRoutesRequest(account_id="acct-1", application="hooks", event_type="test")
    )
    assert answer.registered
    assert [r.endpoint_id for r in answer.routes] == [e.id for e in made]
    assert all(list(r.filter_ids) == [flt.id] for r in answer.routes)
    assert all(not r.HasField("endpoint") for r in answer.routes)
    assert answer.ByteSize() < 10_000

    dry_run = await registry.routing.ResolveRoutes(
        pb.ResolveRoutesRequest(account_id="acct-1", application="hooks", event_type="test", with_endpoints=True)
    )
    assert dry_run.ByteSize() < 30_000
    by_id = {e.id: e for e in made}
    for route in dry_run.routes:
        summary, stored = route.endpoint, by_id[route.endpoint_id]
        assert (summary.id, summary.name, summary.type, summary.target, summary.enabled, summary.description) == (
            stored.id,
            stored.name,
            ep_pb.ENDPOINT_TYPE_WEBHOOK,
            stored.target,
            True,
            stored.description,
        )
        assert not summary.headers and not summary.ca_certificate and not summary.secret and not summary.secret_hint


async def test_unregistered_names_the_part(registry):
    await registry.register("shop", "Shop", [("order", ["big", "small"]), ("refund", [])])
    cases = [
        (("nope", "order", "big"), pb.UNREGISTERED_APPLICATION),
        (("shop", "nope", "big"), pb.UNREGISTERED_EVENT_TYPE),
        (("shop", "order", "huge"), pb.UNREGISTERED_LEVEL),
        (("shop", "order", ""), pb.UNREGISTERED_LEVEL),
        (("shop", "refund", "big"), pb.UNREGISTERED_LEVEL),
    ]
    for (application, event_type, level), part in cases:
        answer = await registry.routing.ResolveRoutes(
            pb.ResolveRoutesRequest(account_id="acct-1", application=application, event_type=event_type, level=level)
        )
        assert (answer.registered, answer.unregistered) == (False, part), (application, event_type, level)
        assert answer.reason and not answer.routes
    for event_type, level in [("order", "big"), ("refund", "")]:
        answer = await registry.routing.ResolveRoutes(
            pb.ResolveRoutesRequest(account_id="acct-1", application="shop", event_type=event_type, level=level)
        )
        assert answer.registered and answer.unregistered == pb.UNREGISTERED_UNSPECIFIED and not answer.reason


async def test_the_route_cache_drops_the_least_recently_used_account(sqlite_url):
    async with running_registry(sqlite_url, registry_route_cache_accounts=2) as (server, port):
        async with channel(f"127.0.0.1:{port}") as ch:
            registry = Registry(port, server, ch)
            endpoints = {}
            for account in ("a", "b", "c"):
                endpoints[account] = await registry.endpoint(account, "ops")
                await registry.filter(account, [endpoints[account].id])

            async def resolve(account: str) -> list[str]:
                answer = await registry.routing.ResolveRoutes(
                    pb.ResolveRoutesRequest(account_id=account, application="hooks", event_type="test")
                )
                return [r.endpoint_id for r in answer.routes]

            resolver = server.registry.resolver
            for account in ("a", "b", "a", "c"):
                assert await resolve(account) == [endpoints[account].id]
            # "b" was used least recently when "c" came in; "a" had been used again.
            assert resolver.cached_accounts() == ["a", "c"]
            assert await resolve("b") == [endpoints["b"].id]  # loaded again, correctly
            assert resolver.cached_accounts() == ["c", "b"]
