"""Endpoint signing secrets in the Standard Webhooks format: "whsec_" + base64 of 24 to 64 random bytes.

Secrets are write-only in the API; people see only a hint (`secret_hint`), the one way hooks hints at
any secret value: the signing secret, the previous one while it still signs, endpoints' header values.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from services.common.bounds import SECRET_MAX_BYTES as MAX_BYTES
from services.common.bounds import SECRET_MIN_BYTES as MIN_BYTES
from services.common.bounds import SECRET_PREFIX as PREFIX

GENERATED_BYTES = 32


def generate_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_BYTES)).decode()


def normalize_secret(value: str) -> str:
    """The secret as stored ("whsec_" + base64); raises ValueError saying what is wrong with it.
    The prefix is optional on input, as in the standardwebhooks library."""
    body = value[len(PREFIX) :] if value.startswith(PREFIX) else value
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError('must be "whsec_" followed by base64 (e.g. from `openssl rand -base64 32`)') from None
    if not MIN_BYTES <= len(raw) <= MAX_BYTES:
        raise ValueError(f"must encode {MIN_BYTES} to {MAX_BYTES} bytes, not {len(raw)}")
    return PREFIX + base64.b64encode(raw).decode()


#: A hint is the last HINT_CHARACTERS characters of a value of at least HINT_MIN_LENGTH; a shorter
#: value gets none, so that a hint never gives a short value (a header's, say) away.
HINT_CHARACTERS = 4
HINT_MIN_LENGTH = 12


def secret_hint(secret: str) -> str:
    return secret[-HINT_CHARACTERS:] if len(secret) >= HINT_MIN_LENGTH else ""
