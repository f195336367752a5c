"""Aborting a call with a google.rpc.Status a person can act on.

Bad input is INVALID_ARGUMENT with `google.rpc.BadRequest` field violations naming each field.
"""

from __future__ import annotations

from typing import NoReturn

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status


class FieldViolations(Exception):
    """Collects what is wrong with a request; raise it, or abort with it."""

    def __init__(self, violations: list[tuple[str, str]] | None = None):
        self.violations: list[tuple[str, str]] = list(violations or [])
        super().__init__(self.summary())

    def add(self, field: str, description: str) -> None:
        self.violations.append((field, description))

    def __bool__(self) -> bool:
        return bool(self.violations)

    def summary(self) -> str:
        return "; ".join(f"{field}: {description}" for field, description in self.violations)

    def to_status(self) -> status_pb2.Status:
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in self.violations
            ]
        )
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message=f"invalid request: {self.summary()}"
        )
        status.details.add().Pack(detail)
        return status


async def abort_invalid(context: grpc.aio.ServicerContext, violations: FieldViolations | list[tuple[str, str]]) -> NoReturn:
    if not isinstance(violations, FieldViolations):
        violations = FieldViolations(violations)
    await context.abort_with_status(rpc_status.to_status(violations.to_status()))
    raise AssertionError("unreachable")


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    status = status_pb2.Status(code=code.value[0], message=message)
    await context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("unreachable")


def field_violations_of(error: grpc.aio.AioRpcError | grpc.RpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of an error's BadRequest detail (clients and tests)."""
    status = rpc_status.from_call(error)
    result: list[tuple[str, str]] = []
    if status is None:
        return result
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            result.extend((v.field, v.description) for v in bad.field_violations)
    return result
