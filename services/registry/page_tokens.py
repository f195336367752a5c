"""Opaque page tokens for List calls: the sort key of the last item returned, bound to the query
it came from, so a token used with other parameters (or garbled) is INVALID_ARGUMENT. A token is
not signed: what it holds is checked like any other input (strings without control characters)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from services.common.errors import FieldViolations
from services.common.limits import text_problem

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_TOKEN_CHARS = 2000


def page_size_of(page_size: int) -> int:
    if page_size < 0:
        raise FieldViolations([("page_size", "must not be negative (0 means the default of 50)")])
    if page_size == 0:
        return DEFAULT_PAGE_SIZE
    return min(page_size, MAX_PAGE_SIZE)


def _fingerprint(query: dict) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]


def encode_page_token(after: list, query: dict) -> str:
    document = {"a": after, "q": _fingerprint(query)}
    return base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_page_token(token: str, query: dict) -> list | None:
    """The sort key to continue after, or None for the first page."""
    if not token:
        return None
    invalid = FieldViolations([("page_token", "is not a page token of this list; start again without one")])
    if len(token) > MAX_TOKEN_CHARS:
        raise invalid
    try:
        padded = token + "=" * (-len(token) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError, RecursionError):
        raise invalid from None
    if not isinstance(document, dict) or not isinstance(document.get("a"), list):
        raise invalid
    if not all(isinstance(value, str) and text_problem(value) is None for value in document["a"]):
        raise invalid
    if document.get("q") != _fingerprint(query):
        raise FieldViolations([("page_token", "was issued for a different query; repeat the same parameters")])
    return document["a"]
