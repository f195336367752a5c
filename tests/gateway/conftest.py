"""Fixtures of the gateway's tests: the test-only Echo service (compiled from its .proto at test time
and served in-process), gateways on real sockets, and httpx clients.

Helpers without fixtures (identities, `running_gateway`) live in tests/helpers/gateway.py.
The Echo service is a genuine test service: it exists so a test can show that an annotated RPC gets
its route, parameters and OpenAPI entry from the descriptor alone, with no gateway code for it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import pytest_asyncio
from google.protobuf.descriptor_pb2 import FileDescriptorSet

from gateway.settings import GatewaySettings
from services.common.server import GrpcServer
from services.common.settings import CommonSettings
from tests.helpers.gateway import ROOT, TEST_PROTOS, echo_servicer, register_policies, running_gateway
from tests.helpers.stack import running_stack


@pytest.fixture(scope="session")
def echo_modules(tmp_path_factory):
    """(echo_pb2, echo_pb2_grpc), compiled from tests/gateway/protos with grpc_tools.protoc."""
    import grpc_tools
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("echo_gen")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    source = TEST_PROTOS / "testing" / "v1" / "echo.proto"
    code = protoc.main(
        [
            "protoc",
            f"-I{TEST_PROTOS}",
            f"-I{ROOT / 'protos'}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "--include_source_info",
            f"--descriptor_set_out={out / 'echo.binpb'}",
            str(source),
        ]
    )
    assert code == 0, "protoc failed on echo.proto"
    sys.path.insert(0, str(out))
    try:
        echo_pb2 = importlib.import_module("testing.v1.echo_pb2")
        echo_pb2.SOURCE_DESCRIPTOR_SET = FileDescriptorSet.FromString((out / "echo.binpb").read_bytes())
        return echo_pb2, importlib.import_module("testing.v1.echo_pb2_grpc")
    finally:
        sys.path.remove(str(out))


@pytest_asyncio.fixture
async def echo_server(echo_modules):
    echo_pb2, echo_pb2_grpc = echo_modules
    server = GrpcServer(
        "echo",
        CommonSettings(),
        [
            (
                echo_pb2_grpc.add_EchoServiceServicer_to_server,
                echo_servicer(echo_pb2, echo_pb2_grpc),
                "testing.v1.EchoService",
            )
        ],
    )
    await server.start("127.0.0.1:0")
    try:
        yield server
    finally:
        await server.stop(0)


@pytest_asyncio.fixture
async def echo_gateway(echo_modules, echo_server):
    """A gateway fronting only the Echo service, given its descriptor."""
    echo_pb2, _ = echo_modules
    async with running_gateway(
        GatewaySettings(gateway_keepalive_seconds=0.2, gateway_max_body_bytes=64 * 1024),
        files=[echo_pb2.DESCRIPTOR],
        targets={"testing.v1": f"127.0.0.1:{echo_server.port}"},
        descriptor_sets=[echo_pb2.SOURCE_DESCRIPTOR_SET],
    ) as client:
        yield client


@pytest_asyncio.fixture
async def full_gateway(kafka, topics, tmp_path):
    """The whole system (tests/helpers/stack.py: registry, sender and matcher on SQLite, the session's
    broker, this test's topics) behind a gateway, whose httpx client this yields (`client.app` is the
    gateway's aiohttp app); the application `policies` is registered."""
    async with running_stack(
        f"sqlite:///{tmp_path / 'registry.db'}",
        kafka.bootstrap_servers,
        topics,
        sender_settings={"sender_retry_schedule": "1h", "sender_attempt_timeout_seconds": 2.0},
    ) as stack:
        await register_policies(stack.registry_target)
        stack.http.app = stack.gateway.app  # type: ignore[attr-defined]
        yield stack.http
