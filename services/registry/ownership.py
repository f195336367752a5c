"""An account's endpoints and filters: the one scoped statement of each (services.common.tenancy),
with how the registry reports one that is not the caller's (NOT_FOUND, exactly like one that does
not exist) and an id that cannot be one (INVALID_ARGUMENT naming the field)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.common.errors import FieldViolations, NotFound
from services.common.paging import Keyset
from services.common.tenancy import AccountScoped
from services.registry.database import Database
from services.registry.validation import check_id, check_text, is_possible_id

T = TypeVar("T")


def require_id(field: str, value: str) -> None:
    """Raises FieldViolations naming `field` when `value` cannot be an id."""
    violations = FieldViolations()
    check_id(violations, field, value)
    if violations:
        raise violations


class Owned(AccountScoped[T]):
    """A kind of resource that belongs to an account; `noun` names it in errors (and its list)."""

    def __init__(self, model: type[T], *, noun: str, order: tuple[InstrumentedAttribute[Any], ...]):
        super().__init__(model)
        self.noun = noun
        #: The order its List call pages in: `order`, a unique sort key.
        self.pages = Keyset[T](f"{noun}s", *order)

    def not_found(self, resource_id: str) -> NotFound:
        return NotFound(f"no {self.noun} {resource_id!r} in your account")

    async def one(self, session: AsyncSession, account_id: str, resource_id: str) -> T:
        """The account's row with this id; NOT_FOUND when there is none (only a possible id is looked up)."""
        row = await self.get(session, account_id, resource_id) if is_possible_id(resource_id) else None
        if row is None:
            raise self.not_found(resource_id)
        return row

    async def list(
        self,
        database: Database,
        account_id: str,
        page_size: int,
        page_token: str,
        *,
        parameter: tuple[str, str, int],
        where: ColumnElement[bool],
    ) -> tuple[list[T], str]:
        """A List call: a page of the account's rows, in `pages` order, and the next page's token.
        `parameter` is the call's narrowing parameter (name, value, most characters): when given, the
        rows listed are those that meet `where`; the page token is bound to its value."""
        name, value, limit = parameter
        violations = FieldViolations()
        check_text(violations, name, value, limit=limit)
        page = self.pages.page(page_size, page_token, {name: value}, violations=violations)
        statement = self.statement(account_id)
        if value:
            statement = statement.where(where)
        async with database.read() as session:
            return await self.pages.fetch(session, statement, page)

    async def read(self, database: Database, account_id: str, resource_id: str) -> T:
        """A get: the id checked (field `id`), then the account's row with it."""
        require_id("id", resource_id)
        async with database.read() as session:
            return await self.one(session, account_id, resource_id)
