"""The one paging helper (services/common/paging.py) on SQLite and PostgreSQL: keyset pages in both
directions with ties in the first key, the page size's default and cap, and page tokens that are
bound to their list and query and refused (naming `page_token`) when garbled."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common import db
from services.common.errors import FieldViolations
from services.common.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Keyset, check_page_size, encode_page_token
from services.sender.models import UTCDateTime


class Base(DeclarativeBase):
    metadata = db.metadata()


class Item(Base):
    __tablename__ = "paging_items"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


BY_NAME = Keyset[Item]("items", Item.name, Item.id)
NEWEST_FIRST = Keyset[Item]("items", Item.created_at, Item.id, descending=True)
START = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest_asyncio.fixture
async def sessions(database_url):
    engine = db.create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    maker = db.sessionmaker(engine)
    async with maker.begin() as session:
        # Ties in the first key of both orders: names repeat, and so do times (a microsecond apart otherwise).
        for number in range(23):
            session.add(
                Item(
                    id=f"id-{number:02d}",
                    name=f"name-{number % 5}",
                    created_at=START + timedelta(microseconds=number // 3),
                )
            )
    try:
        yield maker
    finally:
        await engine.dispose()


async def _all_pages(maker, keyset: Keyset[Item], page_size: int, query: dict | None = None) -> list[list[str]]:
    pages, token = [], ""
    while True:
        page = keyset.page(page_size, token, query)
        async with maker() as session:
            items, token = await keyset.fetch(session, select(Item), page)
        pages.append([item.id for item in items])
        if not token:
            return pages


@pytest.mark.parametrize("page_size", [1, 4, 22, 23, 0])
async def test_pages_cover_every_row_once_in_order(sessions, page_size):
    async with sessions() as session:
        rows = list((await session.execute(select(Item))).scalars())
    by_name = [r.id for r in sorted(rows, key=lambda r: (r.name, r.id))]
    newest_first = [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]
    size = page_size or DEFAULT_PAGE_SIZE
    for keyset, expected in ((BY_NAME, by_name), (NEWEST_FIRST, newest_first)):
        pages = await _all_pages(sessions, keyset, page_size)
        assert [item for page in pages for item in page] == expected
        assert all(len(page) == size for page in pages[:-1]) and 0 < len(pages[-1]) <= size


async def test_a_filtered_list_pages_within_its_filter(sessions):
    page = BY_NAME.page(2, "", {"name": "name-1"})
    seen, token = [], ""
    while True:
        async with sessions() as session:
            items, token = await BY_NAME.fetch(session, select(Item).where(Item.name == "name-1"), page)
        seen += [item.id for item in items]
        if not token:
            break
        page = BY_NAME.page(2, token, {"name": "name-1"})
    assert seen == ["id-01", "id-06", "id-11", "id-16", "id-21"]


def _violations(call) -> list[tuple[str, str]]:
    with pytest.raises(FieldViolations) as error:
        call()
    return error.value.violations


def test_page_size_default_cap_and_errors():
    assert BY_NAME.page(0, "").size == DEFAULT_PAGE_SIZE == 50
    assert BY_NAME.page(MAX_PAGE_SIZE, "").size == MAX_PAGE_SIZE == 1000
    check_page_size(0)
    check_page_size(MAX_PAGE_SIZE)
    assert _violations(lambda: check_page_size(MAX_PAGE_SIZE + 1)) == [("page_size", "must be at most 1000")]
    assert _violations(lambda: BY_NAME.page(MAX_PAGE_SIZE + 1, "")) == [("page_size", "must be at most 1000")]
    assert _violations(lambda: BY_NAME.page(-1, "")) == [
        ("page_size", "must not be negative (0 means the default of 50)")
    ]


async def test_tokens_are_bound_to_their_list_and_query(sessions):
    page = BY_NAME.page(3, "", {"name": ""})
    async with sessions() as session:
        _, token = await BY_NAME.fetch(session, select(Item), page)
    assert token
    assert BY_NAME.page(3, token, {"name": ""}).after is not None
    assert _violations(lambda: BY_NAME.page(3, token, {"name": "name-1"})) == [
        ("page_token", "was issued for a different query; repeat the same parameters")
    ]
    other_list = Keyset[Item]("others", Item.name, Item.id)
    assert [field for field, _ in _violations(lambda: other_list.page(3, token, {"name": ""}))] == ["page_token"]


def _forged(after: list, query: dict) -> str:
    return encode_page_token(after, query)


@pytest.mark.parametrize(
    "token",
    [
        "%%%garbled",
        "x" * 3000,
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(json.dumps({"a": ["only-one"], "q": "x"}).encode()).decode(),
        _forged(["2026-01-02T03:04:05"], {"list": "items"}),  # one value for a key of two
        _forged(["2026-01-02T03:04:05", "id-01"], {"list": "items"}),  # a time without its zone
        _forged(["yesterday", "id-01"], {"list": "items"}),
        _forged(["2026-01-02T03:04:05+00:00", "id\x00"], {"list": "items"}),  # control characters are input too
    ],
)
def test_garbled_tokens_are_refused_naming_page_token(token):
    assert [field for field, _ in _violations(lambda: NEWEST_FIRST.page(10, token))] == ["page_token"]


def test_the_callers_own_findings_come_in_the_same_answer():
    found = FieldViolations([("status", "is not a delivery status")])
    assert [field for field, _ in _violations(lambda: BY_NAME.page(-1, "garbled!", violations=found))] == [
        "page_size",
        "page_token",
        "status",
    ]
    assert _violations(lambda: BY_NAME.page(10, "", violations=found)) == [("status", "is not a delivery status")]
    assert BY_NAME.page(10, "", violations=FieldViolations()).size == 10
