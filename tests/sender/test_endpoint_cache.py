"""The endpoint cache follows the registry's change stream; when the stream breaks (the registry
restarts) the cache is emptied and the stream reopened, so nothing stale is ever used."""

from __future__ import annotations

from hooks.registry.v1 import endpoints_pb2
from hooks.sender.v1 import deliveries_pb2
from services.common.identity import identity_metadata
from services.registry.server import build_server as build_registry
from services.registry.settings import RegistrySettings
from tests.sender.conftest import (
    create_endpoint,
    deliver,
    make_event,
    new_account,
    request_for,
    running_sender,
    wait_for_status,
    wait_until,
)

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED


async def test_the_cache_is_emptied_when_the_registry_stream_breaks(sqlite_url, receiver):
    settings = RegistrySettings(
        registry_database_url=sqlite_url, registry_change_poll_seconds=0.05, shutdown_grace_seconds=0.1
    )
    registry = await build_registry(settings)
    port = await registry.start("127.0.0.1:0")
    account = new_account()
    try:
        async with running_sender(sqlite_url, f"127.0.0.1:{port}") as sender:
            targets = sender.server.sender.targets
            await wait_until(lambda: targets._watching)
            seen = targets._generation
            endpoint = await create_endpoint(sender, account, receiver.url("first"))
            # The creation comes down the change stream too (and drops the endpoint): once it has,
            # nothing can drop the lookup below.
            await wait_until(lambda: targets._generation > seen)
            [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
            await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
            assert endpoint.id in targets._targets

            await registry.stop(0.1)
            await wait_until(lambda: not targets._watching and not targets._targets)

            registry = await build_registry(settings)  # back, on the same address and database
            await registry.start(f"127.0.0.1:{port}")
            await wait_until(lambda: targets._watching)
            endpoint.target = receiver.url("second")
            await sender.endpoints.UpdateEndpoint(
                endpoints_pb2.UpdateEndpointRequest(endpoint=endpoint, update_mask={"paths": ["target"]}),
                metadata=identity_metadata(account),
            )
            [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
            await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
            assert len(receiver.on("first")) == 1 and len(receiver.on("second")) == 1
    finally:
        await registry.stop(0.1)
