"""The whole pipeline with mutual TLS on: registry, sender, matcher and gateway each with a certificate of
one CA, the internal RPCs open to the matcher, the sender and an operator's certificate only. A message
published through the gateway's HTTP API arrives, signed, at a webhook: every hop (gateway -> matcher,
matcher -> registry and sender, sender -> registry) is a mutual-TLS call."""

from __future__ import annotations

import contextlib
import uuid

import grpc
import httpx
import pytest
from aiohttp import web

from gateway.app import build_app
from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from hooks.registry.v1 import applications_pb2, applications_pb2_grpc, routing_pb2, routing_pb2_grpc
from services.common.channels import channel
from services.common.identity import IDENTITY_HEADER, encode_identity
from services.common.settings import KafkaSettings
from services.matcher.server import build_server as build_matcher
from services.matcher.settings import MatcherSettings
from services.registry.server import build_server as build_registry
from services.registry.settings import RegistrySettings
from services.sender.server import build_server as build_sender
from services.sender.settings import SenderSettings
from tests.helpers.certificates import Authority, tls_settings
from tests.helpers.groups import SESSION_TIMEOUT_MS
from tests.helpers.http import serving
from tests.helpers.waiting import eventually

INTERNAL_CALLERS = "matcher,sender,hooks-admin"
ACCOUNT = {IDENTITY_HEADER: encode_identity("acct-tls")}


async def test_a_published_message_reaches_its_webhook_over_mutual_tls(tmp_path, kafka, topics):
    authority = Authority.create(tmp_path / "ca")
    received: list[web.Request] = []
    bodies: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(request)
        bodies.append(await request.read())
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    kafka_settings = KafkaSettings(
        bootstrap_servers=kafka.bootstrap_servers, topic=topics["outbox"], dlq_topic=topics["dlq"]
    )

    async with contextlib.AsyncExitStack() as stack:
        receiver_port = await stack.enter_async_context(serving(receiver))

        registry = await build_registry(
            RegistrySettings(
                registry_database_url=f"sqlite:///{tmp_path / 'registry.db'}",
                registry_change_poll_seconds=0.05,
                shutdown_grace_seconds=0.5,
                sender_allowed_networks="127.0.0.0/8",  # the receiver's loopback, as the sender allows it
                **tls_settings(authority.issue("registry"), INTERNAL_CALLERS),
            )
        )
        registry_target = f"127.0.0.1:{await registry.start('127.0.0.1:0')}"
        stack.push_async_callback(registry.stop, 0.5)

        sender = await build_sender(
            SenderSettings(
                sender_database_url=f"sqlite:///{tmp_path / 'sender.db'}",
                registry_target=registry_target,
                sender_allowed_networks="127.0.0.0/8",
                sender_retry_schedule="50ms,50ms",
                sender_poll_interval_seconds=0.05,
                shutdown_grace_seconds=0.5,
                **tls_settings(authority.issue("sender"), INTERNAL_CALLERS),
            ),
            kafka_settings,
        )
        sender_target = f"127.0.0.1:{await sender.start('127.0.0.1:0')}"
        stack.push_async_callback(sender.stop, 0.5)

        matcher = await build_matcher(
            MatcherSettings(
                registry_target=registry_target,
                sender_target=sender_target,
                matcher_group_id=f"tls-{uuid.uuid4().hex[:8]}",
                matcher_session_timeout_ms=SESSION_TIMEOUT_MS,
                matcher_max_backoff_seconds=0.5,
                shutdown_grace_seconds=0.5,
                **tls_settings(authority.issue("matcher"), INTERNAL_CALLERS),
            ),
            kafka_settings,
        )
        matcher_target = f"127.0.0.1:{await matcher.start('127.0.0.1:0')}"
        stack.push_async_callback(matcher.stop, 0.5)

        gateway_tls = authority.issue("gateway")
        gateway = GatewayServer(
            build_app(
                GatewaySettings(
                    registry_target=registry_target,
                    sender_target=sender_target,
                    matcher_target=matcher_target,
                    **tls_settings(gateway_tls, INTERNAL_CALLERS),
                )
            ),
            shutdown_grace_seconds=0.5,
        )
        gateway_port = await gateway.start("127.0.0.1:0")
        stack.push_async_callback(gateway.stop)
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway_port}", timeout=30)
        )

        # An operator registers the application (an internal call) with a certificate of its own.
        admin = await stack.enter_async_context(channel(registry_target, tls=authority.issue("hooks-admin")))
        await applications_pb2_grpc.ApplicationServiceStub(admin).RegisterApplication(
            applications_pb2.RegisterApplicationRequest(
                application=applications_pb2.Application(
                    name="policies",
                    title="Policies",
                    event_types=[applications_pb2.EventType(id="policy-triggered", title="Policy triggered")],
                )
            ),
            timeout=10,
        )

        # The tenant, through the gateway: an endpoint, a filter, then a message.
        response = await http.post(
            "/api/hooks/v1/endpoints",
            json={
                "name": "ops",
                "type": "ENDPOINT_TYPE_WEBHOOK",
                "target": f"http://127.0.0.1:{receiver_port}/hook",
                "enabled": True,
            },
            headers=ACCOUNT,
        )
        assert response.status_code == 200, response.text
        endpoint_id = response.json()["id"]
        response = await http.post(
            "/api/hooks/v1/filters",
            json={"name": "all", "enabled": True, "applications": ["policies"], "endpointIds": [endpoint_id]},
            headers=ACCOUNT,
        )
        assert response.status_code == 200, response.text
        assert (await http.get("/readyz")).status_code == 200  # the gateway's health checks pass over TLS too
        response = await http.post(
            "/api/hooks/v1/messages",
            json={
                "application": "policies",
                "eventType": "policy-triggered",
                "level": "",
                "id": "msg-tls-1",
                "message": {"policy": "disk"},
                "timestamp": "2026-11-27T10:00:00Z",
            },
            headers=ACCOUNT,
        )
        assert response.status_code == 200, response.text

        await eventually(lambda: received, 60, "the webhook over mutual TLS")
        assert len(received) == 1
        assert received[0].headers["webhook-signature"].startswith("v1,")
        assert b"disk" in bodies[0]

        # The gateway, although it holds a certificate of the CA, cannot read signing secrets.
        async with channel(registry_target, tls=gateway_tls) as as_gateway:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await routing_pb2_grpc.RoutingServiceStub(as_gateway).GetDeliveryTarget(
                    routing_pb2.GetDeliveryTargetRequest(endpoint_id=endpoint_id), timeout=5
                )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
