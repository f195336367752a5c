"""Paging every List call the same way, over gRPC and HTTP alike: one page size default, one cap, one
error for a page size out of range, one opaque page-token format, one keyset query (svix's
`Pagination`/`apply_pagination`).

- `page_size`: 0 means DEFAULT_PAGE_SIZE; negative or above MAX_PAGE_SIZE is INVALID_ARGUMENT with a
  BadRequest field violation naming `page_size` (`check_page_size`; the gateway applies the same
  check before a call, so an HTTP caller gets the very error a gRPC caller gets).
- `page_token`: the sort key of the last item returned, bound to the query it came from, so a token
  used with other parameters (or garbled) is INVALID_ARGUMENT naming `page_token`. A token is not
  signed: what it holds is checked like any other input (strings without control characters).
- `Keyset`: a list's order (a unique sort key, ascending or descending); it reads the request into a
  `Page`, turns a statement into that page's query (one row more than the page, to know whether
  there is a next one), and makes the token of the page after a row.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.types import TypeDecorator

from services.common.errors import FieldViolations
from services.common.limits import text_problem

DEFAULT_PAGE_SIZE = 50
#: The largest page any List call returns; a larger `page_size` is refused (as svix's hard cap).
MAX_PAGE_SIZE = 1000
MAX_TOKEN_CHARS = 2000

T = TypeVar("T")

_INVALID_TOKEN = "is not a page token of this list; start again without one"
_OTHER_QUERY = "was issued for a different query; repeat the same parameters"


def page_size_problem(page_size: int) -> str | None:
    """What is wrong with a requested page size, or None."""
    if page_size < 0:
        return f"must not be negative (0 means the default of {DEFAULT_PAGE_SIZE})"
    if page_size > MAX_PAGE_SIZE:
        return f"must be at most {MAX_PAGE_SIZE}"
    return None


def check_page_size(page_size: int) -> None:
    """Raises FieldViolations naming `page_size` when it is out of range (see `page_size_problem`)."""
    problem = page_size_problem(page_size)
    if problem:
        raise FieldViolations([("page_size", problem)])


def _fingerprint(query: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]


def encode_page_token(after: Sequence[str], query: Mapping[str, object]) -> str:
    document = {"a": list(after), "q": _fingerprint(query)}
    return base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_page_token(token: str, query: Mapping[str, object]) -> list[str] | None:
    """The sort key to continue after, as the strings `encode_page_token` was given, or None for the
    first page; raises FieldViolations naming `page_token` for a token not made for this query."""
    if not token:
        return None
    invalid = FieldViolations([("page_token", _INVALID_TOKEN)])
    if len(token) > MAX_TOKEN_CHARS:
        raise invalid
    try:
        padded = token + "=" * (-len(token) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError, RecursionError):
        raise invalid from None
    if not isinstance(document, dict) or not isinstance(document.get("a"), list):
        raise invalid
    after = document["a"]
    if not all(isinstance(value, str) and text_problem(value) is None for value in after):
        raise invalid
    if document.get("q") != _fingerprint(query):
        raise FieldViolations([("page_token", _OTHER_QUERY)])
    return after


def _aware_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("a page token's time lacks its time zone")
    return value


#: How a sort key value of each column type is written in a token, and read back (ValueError when it
#: cannot be): each type a Keyset may sort on.
_KEY_CODECS: dict[type, tuple[Callable[[Any], str], Callable[[str], Any]]] = {
    str: (str, str),
    datetime: (datetime.isoformat, _aware_datetime),
}


def _python_type(column: InstrumentedAttribute[Any]) -> type:
    """The Python type of a column's values (a TypeDecorator's, that of the type it decorates)."""
    column_type = column.type
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    return column_type.python_type


@dataclass(frozen=True)
class Page:
    """One List call's page as asked: how many items, after which sort key (None: from the start),
    and the query the page token is bound to."""

    size: int
    after: tuple[Any, ...] | None
    query: Mapping[str, object]


class Keyset(Generic[T]):
    """The order a list is paged in: `columns` are its sort key (unique together: end with the
    primary key), all ascending or all `descending`. Declared once per list, at import, so a column
    of a type a token cannot carry fails there."""

    def __init__(self, name: str, *columns: InstrumentedAttribute[Any], descending: bool = False):
        self.name = name
        self.columns = columns
        self.descending = descending
        self._codecs = [_KEY_CODECS[_python_type(column)] for column in columns]

    def page(
        self,
        page_size: int,
        page_token: str,
        query: Mapping[str, object] | None = None,
        *,
        violations: FieldViolations | None = None,
    ) -> Page:
        """The page a request asks for; `query` holds the request's other parameters (those that
        choose the items: the token is valid only with the same ones). Raises FieldViolations naming
        `page_size` or `page_token` when either is wrong, followed by `violations` (the caller's
        own findings, so that one answer names every field at fault) whenever there are any."""
        bound = {"list": self.name, **(query or {})}
        found = FieldViolations()
        problem = page_size_problem(page_size)
        if problem:
            found.add("page_size", problem)
        after = None
        try:
            after = self._decode(page_token, bound)
        except FieldViolations as exc:
            found.violations.extend(exc.violations)
        if violations:
            found.violations.extend(violations.violations)
        if found:
            raise found
        return Page(page_size or DEFAULT_PAGE_SIZE, after, bound)

    def _decode(self, token: str, query: Mapping[str, object]) -> tuple[Any, ...] | None:
        strings = decode_page_token(token, query)
        if strings is None:
            return None
        if len(strings) != len(self.columns):
            raise FieldViolations([("page_token", _INVALID_TOKEN)])
        try:
            return tuple(decode(text) for (_, decode), text in zip(self._codecs, strings, strict=True))
        except ValueError:
            raise FieldViolations([("page_token", _INVALID_TOKEN)]) from None

    def _after(self, key: tuple[Any, ...]) -> ColumnElement[bool]:
        """Rows past `key` in this order: (a > x) or (a = x and b > y) ..., spelled out so that both
        databases use the index on the sort key."""
        terms = []
        for depth, (column, value) in enumerate(zip(self.columns, key, strict=True)):
            beyond = column < value if self.descending else column > value
            terms.append(and_(*(c == v for c, v in zip(self.columns[:depth], key[:depth], strict=True)), beyond))
        return or_(*terms)

    def apply(self, statement: Select[T], page: Page) -> Select[T]:
        """The statement limited to the page: rows after its key, in order, one more than it holds
        (the extra row says there is a next page)."""
        if page.after is not None:
            statement = statement.where(self._after(page.after))
        order = [column.desc() if self.descending else column.asc() for column in self.columns]
        return statement.order_by(*order).limit(page.size + 1)

    def token_after(self, row: T, page: Page) -> str:
        """The page token of the page that follows `row`."""
        key = [encode(getattr(row, column.key)) for column, (encode, _) in zip(self.columns, self._codecs, strict=True)]
        return encode_page_token(key, page.query)

    def finish(self, rows: Sequence[T], page: Page) -> tuple[list[T], str]:
        """The page's items out of what `apply`'s statement read, and the next page's token ("" on
        the last page)."""
        if len(rows) <= page.size:
            return list(rows), ""
        items = list(rows[: page.size])
        return items, self.token_after(items[-1], page)

    async def fetch(self, session: AsyncSession, statement: Select[T], page: Page) -> tuple[list[T], str]:
        """Reads the page of `statement`: its items and the next page's token ("" on the last page)."""
        rows = (await session.execute(self.apply(statement, page))).scalars().all()
        return self.finish(rows, page)
