"""Resources that belong to an account: one statement per kind, scoped to the caller's account, that
every get, list, update and delete starts from, so that no handler filters by account itself
(polar's `get_readable_statement`). Another account's row is simply not there: a caller cannot tell
it from one that does not exist."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")


class AccountScoped(Generic[T]):
    """The rows of `model` an account owns: those whose `account_id` column holds its id (a single
    row is found by its `id`)."""

    def __init__(self, model: type[T]):
        self.model = model
        self.account: InstrumentedAttribute[str] = getattr(model, "account_id")  # noqa: B009 - any model with one
        self.id: InstrumentedAttribute[Any] = getattr(model, "id")  # noqa: B009 - any model with one

    def statement(self, account_id: str) -> Select[T]:
        """The account's rows: where every read and write of the kind starts."""
        return select(self.model).where(self.account == account_id)

    async def get(
        self, session: AsyncSession, account_id: str, resource_id: str, *, for_update: bool = False
    ) -> T | None:
        """The account's row with this id, or None (also when it is another account's)."""
        statement = self.statement(account_id).where(self.id == resource_id)
        if for_update:
            statement = statement.with_for_update()
        return (await session.execute(statement)).scalars().first()
