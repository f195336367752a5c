"""Errors as HTTP responses: the JSON form of google.rpc.Status, with an HTTP status from its code.

A service's error keeps its message and details (BadRequest field violations...); errors the
gateway finds itself (no identity, no route, a body too large) take the same shape, so a caller
reads every error the same way.
"""

from __future__ import annotations

import base64

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway.json_render import json_body

# google/rpc/code.proto's HTTP mapping.
HTTP_STATUS_OF_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class GatewayError(Exception):
    """An error found by the gateway itself, before or instead of a call."""

    def __init__(
        self,
        http_status: int,
        code: int,
        message: str,
        violations: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.http_status = http_status
        self.status = status_pb2.Status(code=code, message=message)
        self.headers = headers or {}
        if violations:
            self.status.details.add().Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations
                    ]
                )
            )

    def response(self) -> web.Response:
        return status_response(self.status, self.http_status, self.headers)


def bad_request(message: str, violations: list[tuple[str, str]] | None = None) -> GatewayError:
    return GatewayError(400, code_pb2.INVALID_ARGUMENT, message, violations)


def status_json(status: status_pb2.Status) -> dict:
    """The protobuf JSON form of a Status; details of a type nobody here knows stay as base64 Any."""
    document: dict = {"code": status.code, "message": status.message}
    details = []
    for detail in status.details:
        try:
            details.append(json_format.MessageToDict(detail))
        except (TypeError, KeyError, json_format.Error):
            details.append({"@type": detail.type_url, "value": base64.b64encode(detail.value).decode()})
    if details:
        document["details"] = details
    return document


def status_response(status: status_pb2.Status, http_status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=http_status,
        body=json_body(status_json(status)),
        content_type="application/json",
        headers=headers,
    )


def status_of_rpc_error(error: grpc.RpcError) -> status_pb2.Status:
    """The call's google.rpc.Status with its details, or one made of its code and message."""
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # a details trailer that disagrees with the call's status
        status = None
    if status is None:
        status = status_pb2.Status(code=error.code().value[0], message=error.details() or "")
    return status


def rpc_error_response(error: grpc.RpcError) -> web.Response:
    status = status_of_rpc_error(error)
    return status_response(status, http_status_of(status.code))


def http_status_of(code: int) -> int:
    return HTTP_STATUS_OF_CODE.get(_CODE_BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN), 500)
