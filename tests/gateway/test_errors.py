"""Errors: each gRPC code's HTTP status (google/rpc/code.proto's mapping), the google.rpc.Status JSON
body with its details, 401 for a missing or garbled identity, 503 when the service is down."""

from __future__ import annotations

import base64
import json

import pytest

from gateway.settings import GatewaySettings
from services.common.broker import free_port
from tests.helpers.gateway import identity, running_gateway

EXPECTED = {
    1: 499,  # CANCELLED
    2: 500,  # UNKNOWN
    3: 400,  # INVALID_ARGUMENT
    4: 504,  # DEADLINE_EXCEEDED
    5: 404,  # NOT_FOUND
    6: 409,  # ALREADY_EXISTS
    7: 403,  # PERMISSION_DENIED
    8: 429,  # RESOURCE_EXHAUSTED
    9: 400,  # FAILED_PRECONDITION
    10: 409,  # ABORTED
    11: 400,  # OUT_OF_RANGE
    12: 501,  # UNIMPLEMENTED
    13: 500,  # INTERNAL
    14: 503,  # UNAVAILABLE
    15: 500,  # DATA_LOSS
    16: 401,  # UNAUTHENTICATED
}


@pytest.mark.parametrize("code, http_status", sorted(EXPECTED.items()))
async def test_each_grpc_code_maps_to_its_http_status(echo_gateway, code, http_status):
    response = await echo_gateway.post(
        f"/api/testing/v1/failures/{code}", json={"message": f"failure {code}"}, headers=identity()
    )
    assert response.status_code == http_status, response.text
    assert response.json() == {"code": code, "message": f"failure {code}"}


async def test_the_status_details_come_through_as_json(echo_gateway):
    response = await echo_gateway.post(
        "/api/testing/v1/failures/3", json={"message": "bad", "violationField": "endpoint.target"}, headers=identity()
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": 3,
        "message": "bad",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "endpoint.target", "description": "is wrong"}],
            }
        ],
    }


def _b64(document) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-rh-identity": ""},
        {"x-rh-identity": "not base64!"},
        {"x-rh-identity": base64.b64encode(b"not json").decode()},
        {"x-rh-identity": _b64({"identity": {}})},
        {"x-rh-identity": _b64({"identity": {"account_number": ""}})},
        {"x-rh-identity": _b64(["identity"])},
        # Nested 5,000 deep within the 8 KB bound: once a RecursionError and a 500.
        {"x-rh-identity": base64.b64encode(b"[" * 5000).decode()},
        {"x-rh-identity": _b64({"identity": {"account_number": "acct\u0000"}})},
    ],
)
async def test_missing_or_garbled_identity_is_401(echo_gateway, headers):
    for method, path in [
        ("GET", "/api/testing/v1/rooms/r/echoes/e"),
        ("POST", "/api/testing/v1/failures/3"),
        ("GET", "/api/testing/v1/counts"),
        ("GET", "/api/testing/v1/unknown"),
    ]:
        response = await echo_gateway.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["code"] == 16
        assert "x-rh-identity" in response.json()["message"]


async def test_the_openapi_document_and_probes_need_no_identity(echo_gateway):
    for path in ["/api/hooks/v1/openapi.json", "/healthz", echo_gateway.metrics_url]:
        assert (await echo_gateway.get(path)).status_code == 200, path


async def test_a_service_that_is_down_is_503_and_the_gateway_stays_up(echo_modules):
    echo_pb2, _ = echo_modules
    nobody = f"127.0.0.1:{free_port()}"
    async with running_gateway(
        GatewaySettings(),
        files=[echo_pb2.DESCRIPTOR],
        targets={"testing.v1": nobody},
        descriptor_sets=[echo_pb2.SOURCE_DESCRIPTOR_SET],
    ) as client:
        for _ in range(2):
            response = await client.get("/api/testing/v1/rooms/r/echoes/e", headers=identity())
            assert response.status_code == 503, response.text
            assert response.json()["code"] == 14
        response = await client.get("/api/testing/v1/counts", params={"count": 1}, headers=identity())
        assert response.status_code == 503
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["notServing"] == ["testing.v1.EchoService"]
