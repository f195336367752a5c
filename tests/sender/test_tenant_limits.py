"""No tenant can grow the sender's memory without bound (issue 8, finding 11): an account watches on
at most HOOKS_SENDER_WATCH_STREAMS_PER_ACCOUNT streams (beyond, RESOURCE_EXHAUSTED naming the limit),
TLS contexts for endpoints' own CAs and the endpoint cache keep only the entries used last, and a
plain http:// target never gets a TLS context (nor fails for its CA)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from ipaddress import ip_network

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from hooks.registry.v1 import routing_pb2_grpc
from hooks.sender.v1 import deliveries_pb2
from services.common.channels import channel
from services.common.errors import QuotaExceeded
from services.common.identity import identity_metadata
from services.common.network_policy import NetworkPolicy
from services.sender.retry_policy import Verdict
from services.sender.targets import TargetCache
from services.sender.transports import SSL_CONTEXT_CACHE_SIZE, HttpTransport
from services.sender.watch_hub import QUEUE_SIZE, WatchHub
from tests.helpers.sender import create_endpoint, deliver, make_event, new_account, request_for, running_sender
from tests.helpers.waiting import eventually


@pytest.fixture(params=["sqlite"])
def database_url(request, sqlite_url):
    return sqlite_url


async def open_watch(sender, account: str) -> grpc.aio.UnaryStreamCall:
    """A WatchDeliveries stream, once the sender has taken it (its initial metadata has come)."""
    call = sender.deliveries.WatchDeliveries(
        deliveries_pb2.WatchDeliveriesRequest(), metadata=identity_metadata(account)
    )
    await call.initial_metadata()
    return call


async def refused_watch(sender, account: str) -> grpc.aio.AioRpcError:
    """The error a WatchDeliveries stream ends with (the test fails if it streams anything)."""
    call = sender.deliveries.WatchDeliveries(
        deliveries_pb2.WatchDeliveriesRequest(), metadata=identity_metadata(account)
    )
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for change in call:
            raise AssertionError(f"streamed {change}")
    return error.value


async def test_an_account_watches_on_at_most_its_limit_of_streams(database_url, registry, receiver):
    account, other = new_account(), new_account()
    async with running_sender(database_url, registry, sender_watch_streams_per_account=3) as sender:
        calls = [await open_watch(sender, account) for _ in range(3)]
        try:
            error = await refused_watch(sender, account)
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "at most 3 streams" in error.details()
            quota = error_details_pb2.QuotaFailure()
            assert rpc_status.from_call(error).details[0].Unpack(quota)
            assert quota.violations[0].subject == "watch_streams_per_account"

            calls.append(await open_watch(sender, other))  # another account's limit is its own

            # The open streams still work...
            endpoint = await create_endpoint(sender, account, receiver.url("watched"))
            [answer] = await deliver(sender, request_for(make_event(account), endpoint.id))
            for call in calls[:3]:
                first = await asyncio.wait_for(call.read(), 10)
                assert first.delivery.id == answer.delivery_ids[0]
            # ...and closing one makes room for another.
            calls.pop(0).cancel()
            await eventually(lambda: sender.server.sender.hub.watching(account) == 2)
            calls.append(await open_watch(sender, account))
        finally:
            for call in calls:
                call.cancel()


def test_a_watcher_that_falls_behind_is_cut_off_and_still_counted():
    """A subscription nobody reads holds at most QUEUE_SIZE changes; until its stream ends it counts
    against the limit, so cut-off streams cannot pile up."""
    hub = WatchHub(streams_per_account=1)
    subscription = hub.subscribe("acct")
    for index in range(QUEUE_SIZE + 5):
        hub.publish("acct", deliveries_pb2.Delivery(id=str(index)))
    assert subscription.overflowed and subscription.queue.qsize() == QUEUE_SIZE
    with pytest.raises(QuotaExceeded):
        hub.subscribe("acct")
    hub.unsubscribe(subscription)  # its stream ended
    assert not hub.wants("acct")
    hub.subscribe("acct")


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory) -> str:
    directory = tmp_path_factory.mktemp("ca")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "1", "-subj", "/CN=hooks test CA"],
        cwd=directory, check=True, capture_output=True,
    )  # fmt: skip
    return (directory / "ca.pem").read_text()


async def test_tls_contexts_are_kept_for_the_cas_used_last_only(ca_pem):
    transport = HttpTransport(NetworkPolicy(), timeout_seconds=5, concurrency=4)
    # Distinct CA texts (text around a PEM block is ignored) as distinct tenants would give.
    texts = [f"endpoint {index}\n{ca_pem}" for index in range(SSL_CONTEXT_CACHE_SIZE + 1)]
    first = transport.ssl_context(texts[0])
    assert transport.ssl_context(texts[0]) is first  # one context per distinct CA
    for text in texts[1:]:
        transport.ssl_context(text)
    assert transport.ssl_context(texts[-1]) is transport.ssl_context(texts[-1])
    assert transport.ssl_context(texts[0]) is not first  # the least recently used was dropped


async def test_a_plain_http_target_needs_no_tls_context(receiver):
    """Before, every distinct CA text got a context, even for http:// (where it is never used), and
    an unreadable one failed the attempt."""
    transport = HttpTransport(NetworkPolicy([ip_network("127.0.0.0/8")]), timeout_seconds=5, concurrency=4)
    try:
        outcome = await transport.post(receiver.url("plain"), b"{}", {}, ca_pem="not a certificate at all")
    finally:
        await transport.close()
    assert outcome.verdict is Verdict.SUCCEEDED, outcome.error
    assert len(receiver.on("plain")) == 1


async def test_the_endpoint_cache_keeps_the_endpoints_used_last_only(sender, registry, receiver):
    account = new_account()
    endpoints = [await create_endpoint(sender, account, receiver.url(f"e{index}")) for index in range(4)]
    registry_channel = channel(registry)
    targets = TargetCache(routing_pb2_grpc.RoutingServiceStub(registry_channel), size=2)
    targets.start()
    try:
        await eventually(lambda: targets.watching)
        for endpoint in endpoints:
            assert (await targets.get(endpoint.id)).endpoint.target == endpoint.target
        assert len(targets) == 2
    finally:
        await targets.close()
        with contextlib.suppress(Exception):
            await registry_channel.close()
