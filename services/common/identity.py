"""The caller's account, from the `x-rh-identity` metadata (base64 JSON), as on the Insights platform.

Public RPCs call `require_account(context)`; internal RPCs take the account as a field.
"""

from __future__ import annotations

import base64
import binascii
import json

import grpc

from services.common.limits import string_problem

IDENTITY_HEADER = "x-rh-identity"
MAX_IDENTITY_BYTES = 8 * 1024


class IdentityError(ValueError):
    """The identity header is missing or cannot be read."""


def parse_identity(value: str | bytes | None) -> str:
    """Returns `identity.account_number` from a base64 x-rh-identity value, or raises IdentityError."""
    if value is None or value == "" or value == b"":
        raise IdentityError(f"missing {IDENTITY_HEADER}")
    if isinstance(value, str):
        value = value.encode("ascii", errors="replace")
    if len(value) > MAX_IDENTITY_BYTES:
        raise IdentityError(f"{IDENTITY_HEADER} is larger than {MAX_IDENTITY_BYTES} bytes")
    try:
        document = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise IdentityError(f"{IDENTITY_HEADER} is not base64-encoded JSON") from exc
    except RecursionError:  # 5,000 '[' fit in the size bound: refused like any other bad header
        raise IdentityError(f"{IDENTITY_HEADER} is JSON nested too deeply") from None
    identity = document.get("identity") if isinstance(document, dict) else None
    account = identity.get("account_number") if isinstance(identity, dict) else None
    if not isinstance(account, str) or not account.strip() or len(account) > 64:
        raise IdentityError(f"{IDENTITY_HEADER} has no identity.account_number")
    account = account.strip()
    if string_problem("account_id", account):
        raise IdentityError(f"{IDENTITY_HEADER} has an identity.account_number with a control character")
    return account


def encode_identity(account_number: str) -> str:
    """The x-rh-identity value for an account (for clients, the CLI and tests)."""
    document = {"identity": {"account_number": account_number, "type": "User"}}
    return base64.b64encode(json.dumps(document).encode()).decode()


def identity_metadata(account_number: str) -> tuple[tuple[str, str], ...]:
    return ((IDENTITY_HEADER, encode_identity(account_number)),)


async def require_account(context: grpc.aio.ServicerContext) -> str:
    """The caller's account, or aborts the call with UNAUTHENTICATED."""
    value = None
    for key, val in context.invocation_metadata() or ():
        if key == IDENTITY_HEADER:
            value = val
            break
    try:
        return parse_identity(value)
    except IdentityError as exc:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        raise  # unreachable: abort raises
