"""What can go wrong in a registry call, raised by the domain code and turned into a gRPC status
by `answers_problems` at the servicer's edge. Raising inside a write transaction rolls it back, so a
failed call changes nothing."""

from __future__ import annotations

import functools

import grpc
from sqlalchemy.exc import DBAPIError

from services.common.errors import FieldViolations, abort, abort_invalid
from services.common.logging import get_logger

log = get_logger(__name__)


class Problem(Exception):
    code = grpc.StatusCode.INTERNAL


class NotFound(Problem):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(Problem):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(Problem):
    code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(Problem):
    code = grpc.StatusCode.OUT_OF_RANGE


def raise_if(violations: FieldViolations) -> None:
    if violations:
        raise violations


def answers_problems(method):
    """Decorates a unary servicer method: FieldViolations -> INVALID_ARGUMENT with BadRequest,
    a Problem -> its code and message, a database error -> UNAVAILABLE (retryable), anything else
    -> INTERNAL, logged, without internals in the message."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except FieldViolations as exc:
            await abort_invalid(context, exc)
        except Problem as exc:
            await abort(context, exc.code, str(exc))
        except DBAPIError as exc:
            log.warning("database error", error=str(exc).splitlines()[0])
            await abort(context, grpc.StatusCode.UNAVAILABLE, "the registry's database is unavailable; try again shortly")
        except Exception:
            log.exception("unexpected error")
            await abort(context, grpc.StatusCode.INTERNAL, "the registry failed unexpectedly; the error is in its log")

    return wrapper
