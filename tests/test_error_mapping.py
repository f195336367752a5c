"""One error mapping for every servicer (issue 8, findings 9 and 10): whatever a handler raises, unary or
streaming, its caller gets a proper status code and a message naming no Python class and no internals;
the stack trace goes to the log. And a hostile identity header is refused, not crashed on."""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import DataError, OperationalError

from services.common.errors import FieldViolations, NotFound, QuotaExceeded, field_violations_of
from services.common.identity import IdentityError, parse_identity
from services.common.server import GrpcServer
from services.common.settings import CommonSettings

SERVICE = "testing.v1.Failing"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


class _DriverError(Exception):
    """What a database driver raises (wrapped by SQLAlchemy)."""

    sqlstate = None


FAILURES = {
    "bug": lambda: RuntimeError("secret internals at /srv/db password=hunter2"),
    "key": lambda: KeyError("endpoint"),
    "violations": lambda: FieldViolations([("endpoint.target", "is required")]),
    "missing": lambda: NotFound("endpoint 'x' not found"),
    "quota": lambda: QuotaExceeded("endpoints_per_account", "an account may have at most 3 endpoints"),
    "data": lambda: DataError("INSERT ...", {}, _DriverError("invalid byte sequence for encoding UTF8: 0x00")),
    "down": lambda: OperationalError("SELECT 1", {}, _DriverError("connection refused")),
    # Descriptions quoting what a tenant sent: 32 KB of answer once percent-encoded, past gRPC's 16 KiB
    # limit on trailers (8 KiB refused at random): the caller used to get RESOURCE_EXHAUSTED instead.
    "quoted": lambda: FieldViolations(
        [(field, f"{'😀' * 255!r} is not a registered {field}") for field in ("application", "event_type", "level")]
        + [(f"headers.{i}", "x" * 4000) for i in range(3)]
    ),
}


def _raise(kind: str):
    raise FAILURES[kind]()


async def _unary(request: bytes, context) -> bytes:
    _raise(request.decode())


async def _stream(request: bytes, context):
    yield b"first"
    _raise(request.decode())


def _add(servicer, server) -> None:
    identity = lambda value: value  # noqa: E731 - raw bytes in and out
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary, identity, identity),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream, identity, identity),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


@pytest.fixture
async def failing():
    server = GrpcServer("testing", CommonSettings(shutdown_grace_seconds=0.5), [(_add, None, SERVICE)])
    port = await server.start("127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop(0.5)


EXPECTED = {
    "bug": grpc.StatusCode.INTERNAL,
    "key": grpc.StatusCode.INTERNAL,
    "violations": grpc.StatusCode.INVALID_ARGUMENT,
    "missing": grpc.StatusCode.NOT_FOUND,
    "quota": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "data": grpc.StatusCode.INVALID_ARGUMENT,
    "down": grpc.StatusCode.UNAVAILABLE,
    "quoted": grpc.StatusCode.INVALID_ARGUMENT,
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
@pytest.mark.parametrize("method", ["Unary", "Stream"])
async def test_every_failure_gets_its_code_and_no_internals(failing, method, kind):
    call = failing.unary_unary if method == "Unary" else failing.unary_stream
    rpc = call(f"/{SERVICE}/{method}")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if method == "Unary":
            await rpc(kind.encode())
        else:
            assert [item async for item in rpc(kind.encode())] == [b"first"]
    error = caught.value
    assert error.code() == EXPECTED[kind], error.details()
    details = error.details()
    for leak in ("RuntimeError", "KeyError", "Error'", "<class", "Traceback", "hunter2", "/srv/db", "0x00"):
        assert leak not in details, details
    if kind == "violations":
        assert field_violations_of(error) == [("endpoint.target", "is required")]
    if kind == "quota":
        status = rpc_status.from_call(error)
        quota = error_details_pb2.QuotaFailure()
        assert status.details[0].Unpack(quota)
        assert quota.violations[0].subject == "endpoints_per_account"
        assert "at most 3 endpoints" in details
    if kind == "missing":
        assert details == "endpoint 'x' not found"
    if kind == "quoted":  # cut to fit, every field still named, as far as the budget goes
        violations = field_violations_of(error)
        assert [field for field, _ in violations[:3]] == ["application", "event_type", "level"]
        assert all(description.endswith("…") for _, description in violations)
        assert details.startswith("invalid request: application: ") and details.endswith("…")


def test_a_deeply_nested_identity_is_refused_not_crashed_on():
    # 5,000 '[' fit within the 8 KB bound of the header (finding 9: RecursionError -> 500/UNKNOWN).
    value = base64.b64encode(b"[" * 5000).decode()
    assert len(value) < 8 * 1024
    with pytest.raises(IdentityError, match="nested too deeply"):
        parse_identity(value)


@pytest.mark.parametrize("account", ["acct\u0000", "a\nb", "a\u009fb", "\ud800x"])
def test_an_identity_whose_account_holds_control_characters_is_refused(account):
    document = json.dumps({"identity": {"account_number": account}}).encode()
    with pytest.raises(IdentityError):
        parse_identity(base64.b64encode(document))


async def test_a_nul_refused_by_postgresql_is_invalid_argument_not_unavailable():
    """asyncpg's "invalid byte sequence for encoding UTF8: 0x00" (SQLSTATE 22021) reaches SQLAlchemy as a
    plain DBAPIError: retrying it would fail for ever, so it is the caller's INVALID_ARGUMENT."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from services.common.errors import status_of_exception
    from services.common.logging import get_logger

    engine = create_async_engine(PG_URL)
    try:
        async with engine.connect() as connection:
            with pytest.raises(Exception) as caught:
                await connection.execute(text("SELECT :value"), {"value": "a\x00b"})
    finally:
        await engine.dispose()
    status = status_of_exception(caught.value, "registry", get_logger(__name__))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], status.message


async def test_a_request_nested_past_protobufs_limit_is_invalid_argument(failing):
    """34 nested objects in a Struct are more than protobuf's 100 decoding levels: the request fails to
    decode before any handler runs, which gRPC answers UNKNOWN with a Python class name (found by the fuzz
    suite through PublishMessage)."""
    from google.protobuf import struct_pb2

    value = struct_pb2.Value()
    json_value: dict = {}
    inner = json_value
    for _ in range(40):
        inner["x"] = {}
        inner = inner["x"]
    value.struct_value.update(json_value)
    server = GrpcServer(
        "testing", CommonSettings(shutdown_grace_seconds=0.5), [(_add_decoding, None, DECODING_SERVICE)]
    )
    port = await server.start("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for method in ("Unary", "Streaming"):
                rpc = (channel.unary_unary if method == "Unary" else channel.stream_unary)(
                    f"/{DECODING_SERVICE}/{method}", request_serializer=struct_pb2.Value.SerializeToString
                )
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    if method == "Unary":
                        await rpc(value)
                    else:
                        await rpc(iter([struct_pb2.Value(string_value="fine"), value]))
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
                assert "<class" not in caught.value.details()
                assert field_violations_of(caught.value)[0][0] == "request"
                # A value within the limit is decoded and answered.
                shallow = struct_pb2.Value(string_value="fine")
                answer = await rpc(shallow) if method == "Unary" else await rpc(iter([shallow, shallow]))
                assert answer == b"ok"
    finally:
        await server.stop(0.5)


DECODING_SERVICE = "testing.v1.Decoding"


async def _decoded_unary(request, context) -> bytes:
    return b"ok"


async def _decoded_stream(requests, context) -> bytes:
    async for _ in requests:
        pass
    return b"ok"


def _add_decoding(servicer, server) -> None:
    from google.protobuf import struct_pb2

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_decoded_unary, struct_pb2.Value.FromString, lambda b: b),
        "Streaming": grpc.stream_unary_rpc_method_handler(_decoded_stream, struct_pb2.Value.FromString, lambda b: b),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(DECODING_SERVICE, handlers),))
