"""Errors as a google.rpc.Status a person can act on: one error type family and one conversion for
every servicer of every service.

Bad input is INVALID_ARGUMENT with `google.rpc.BadRequest` field violations naming each field; a
tenant over a quota is RESOURCE_EXHAUSTED with a `google.rpc.QuotaFailure` naming the limit. Domain
code raises `FieldViolations` or a `Problem`; `status_of_exception` turns whatever a handler raised
into the status its caller gets, and `services.common.server` applies it to every call (unary and
streaming) so that no caller ever sees UNKNOWN, a Python class name or a stack trace. Every status
goes out through `grpc_status`, which keeps it small enough for any gRPC client to read.
"""

from __future__ import annotations

from typing import NoReturn

import grpc
import structlog
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

#: gRPC clients refuse an answer whose trailers pass 8 KiB at random (the soft limit; always at 16 KiB),
#: and then see RESOURCE_EXHAUSTED instead of the error. A description that quotes a tenant's value
#: could pass it (grpc-message is percent-encoded: a byte outside printable ASCII takes three), so the
#: message and the details are each cut to a budget well under it.
MAX_MESSAGE_WIRE_BYTES = 2048
MAX_DETAILS_BYTES = 3072  # serialized; base64 in grpc-status-details-bin makes it 4 KiB
#: A field violation's description is cut to this many UTF-8 bytes when the details are over budget.
MAX_DESCRIPTION_BYTES = 256
ELLIPSIS = "…"


def _wire_bytes(text: str) -> int:
    return sum(1 if 0x20 <= byte < 0x7F and byte != 0x25 else 3 for byte in text.encode())


def _cut(text: str, wire_budget: int) -> str:
    """`text`, cut to fit `wire_budget` bytes as grpc-message sends it, ending with an ellipsis if cut."""
    if _wire_bytes(text) <= wire_budget:
        return text
    size, kept = _wire_bytes(ELLIPSIS), []
    for char in text:
        size += _wire_bytes(char)
        if size > wire_budget:
            break
        kept.append(char)
    return "".join(kept) + ELLIPSIS


def _cut_bytes(text: str, limit: int) -> str:
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - len(ELLIPSIS.encode())].decode(errors="ignore") + ELLIPSIS


def grpc_status(status: status_pb2.Status) -> grpc.Status:
    """`status` as gRPC sends it, cut to fit what every client reads: the message to
    MAX_MESSAGE_WIRE_BYTES, the details to MAX_DETAILS_BYTES (field violations keep every field, their
    descriptions shortened; beyond that, violations and then other details are left out)."""
    status.message = _cut(status.message, MAX_MESSAGE_WIRE_BYTES)
    if status.ByteSize() - len(status.message.encode()) > MAX_DETAILS_BYTES:
        details = [any_pb2.Any(type_url=d.type_url, value=d.value) for d in status.details]
        del status.details[:]
        for detail in details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                for violation in bad.field_violations:
                    violation.field = _cut_bytes(violation.field, MAX_DESCRIPTION_BYTES)
                    violation.description = _cut_bytes(violation.description, MAX_DESCRIPTION_BYTES)
                while bad.field_violations and bad.ByteSize() > MAX_DETAILS_BYTES:
                    del bad.field_violations[-1]
                detail.Pack(bad)
            if sum(d.ByteSize() for d in status.details) + detail.ByteSize() <= MAX_DETAILS_BYTES:
                status.details.append(detail)
    return rpc_status.to_status(status)


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
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in self.violations
            ]
        )
        status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=f"invalid request: {self.summary()}")
        status.details.add().Pack(detail)
        return status


async def abort_invalid(
    context: grpc.aio.ServicerContext, violations: FieldViolations | list[tuple[str, str]]
) -> NoReturn:
    if not isinstance(violations, FieldViolations):
        violations = FieldViolations(violations)
    await context.abort_with_status(grpc_status(violations.to_status()))
    raise AssertionError("unreachable")


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    status = status_pb2.Status(code=code.value[0], message=message)
    await context.abort_with_status(grpc_status(status))
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


class Problem(Exception):
    """Something a caller can be told; `code` is its gRPC status code, the message is shown as is,
    with the google.rpc error details of `details()`."""

    code = grpc.StatusCode.INTERNAL

    def details(self) -> list[Message]:
        """The status' details (QuotaFailure, PreconditionFailure...); none by default."""
        return []

    def to_status(self) -> status_pb2.Status:
        status = status_pb2.Status(code=self.code.value[0], message=str(self))
        for detail in self.details():
            status.details.add().Pack(detail)
        return status


class NotFound(Problem):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(Problem):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(Problem):
    code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(Problem):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(Problem):
    code = grpc.StatusCode.UNAVAILABLE


class QuotaExceeded(Problem):
    """A tenant reached one of its limits: RESOURCE_EXHAUSTED (HTTP 429) naming the limit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, subject: str, description: str):
        super().__init__(f"quota exceeded: {description}")
        self.subject = subject
        self.description = description

    def details(self) -> list[Message]:
        violation = error_details_pb2.QuotaFailure.Violation(subject=self.subject, description=self.description)
        return [error_details_pb2.QuotaFailure(violations=[violation])]


def _is_data_error(exc: DBAPIError) -> bool:
    """A data exception (SQLSTATE class 22, e.g. 22021 for a NUL in text) or an integrity violation (23):
    the statement's values are at fault, not the database. asyncpg's errors reach SQLAlchemy as plain
    DBAPIError, with the SQLSTATE on the driver's error."""
    state = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
    return state[:2] in ("22", "23")


def status_of_exception(exc: BaseException, service: str, log: structlog.stdlib.BoundLogger) -> status_pb2.Status:
    """The status a caller gets for what a handler raised (logged when it is not the caller's doing).

    - FieldViolations: INVALID_ARGUMENT with the field violations.
    - a Problem: its code and message (and details).
    - a database data error (a value the database cannot store, e.g. NUL in PostgreSQL text, a
      constraint): INVALID_ARGUMENT, since asking again would fail again.
    - any other database error: UNAVAILABLE (retryable).
    - anything else: INTERNAL, without internals; the stack trace goes to the log.
    """
    if isinstance(exc, FieldViolations):
        return exc.to_status()
    if isinstance(exc, Problem):
        return exc.to_status()
    if isinstance(exc, (DataError, IntegrityError)) or (isinstance(exc, DBAPIError) and _is_data_error(exc)):
        log.warning("request refused by the database", error=str(exc.orig).splitlines()[0] if exc.orig else "")
        return status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message="the request holds a value that cannot be stored"
        )
    if isinstance(exc, DBAPIError):
        log.warning("database error", error=str(exc).splitlines()[0])
        return status_pb2.Status(
            code=code_pb2.UNAVAILABLE, message=f"the {service}'s database is unavailable; try again shortly"
        )
    log.error("unexpected error", exc_info=exc)
    return status_pb2.Status(
        code=code_pb2.INTERNAL, message=f"the {service} failed unexpectedly; the error is in its log"
    )
