"""The registry's tables.

Applications own their event types, event types their levels (in registration order). Endpoints and
filters belong to an account; a filter's sets (applications, event types, levels) and the endpoints it
triggers are child rows, so they can be found by what they reference. Every committed change is a row
of `changes`, whose sequence number orders changes across replicas.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Relationship, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from services.common.db import metadata, utcnow

# A 64-bit key on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the autoincrementing rowid.
BigKey = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator):
    """A timestamp that always comes back timezone-aware in UTC (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = metadata()


def children(order_by: str, **options: Any) -> Relationship[Any]:
    """A parent's child rows: in `order_by` order, loaded with the parent, deleted with it."""
    return relationship(
        order_by=order_by, cascade="all, delete-orphan", lazy="selectin", passive_deletes=True, **options
    )


class CatalogEntry:
    """What an event type and a level have alike: a key within their parent, a title, a position."""

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True, sort_order=-1)
    #: The entry's id within its parent (what messages carry).
    key: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)


class Application(Base):
    __tablename__ = "applications"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    create_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    update_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    event_types: Mapped[list[EventType]] = children("EventType.position", back_populates="application")


class EventType(CatalogEntry, Base):
    __tablename__ = "event_types"
    __table_args__ = (UniqueConstraint("application_name", "key"),)

    application_name: Mapped[str] = mapped_column(ForeignKey("applications.name", ondelete="CASCADE"))
    #: The JSON Schema of its events' `message` (a JSON object), or None.
    schema: Mapped[dict | None] = mapped_column(JSON, nullable=True, default=None)
    #: Hex SHA-256 of the schema's canonical JSON (hooks_client.registration.schema_version); "" without one.
    schema_version: Mapped[str] = mapped_column(String(64), default="", server_default="")
    application: Mapped[Application] = relationship(back_populates="event_types")
    levels: Mapped[list[Level]] = children("Level.position", back_populates="event_type")


class Level(CatalogEntry, Base):
    __tablename__ = "levels"
    __table_args__ = (UniqueConstraint("event_type_id", "key"),)

    event_type_id: Mapped[int] = mapped_column(ForeignKey("event_types.id", ondelete="CASCADE"))
    event_type: Mapped[EventType] = relationship(back_populates="levels")


class Endpoint(Base):
    __tablename__ = "endpoints"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    #: webhook, slack, teams, google_chat or email.
    type: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(2000))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    ca_certificate: Mapped[str] = mapped_column(Text, default="")
    secret: Mapped[str] = mapped_column(String(200))
    #: The secret `secret` replaced, signing beside it until `previous_secret_expire_time`; "" when none.
    previous_secret: Mapped[str] = mapped_column(String(200), default="", server_default="")
    previous_secret_expire_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, default=None)
    disabled_reason: Mapped[str] = mapped_column(String(1000), default="")
    #: Most requests per `rate_limit_period` ("second" or "minute"); 0: no limit.
    rate_limit_requests: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rate_limit_period: Mapped[str] = mapped_column(String(10), default="", server_default="")
    #: "unordered", or "ordered": one delivery in flight at a time, in acceptance order.
    delivery_order: Mapped[str] = mapped_column(String(10), default="unordered", server_default="unordered")
    #: When the endpoint was paused (its deliveries wait until it is resumed); None: it is not paused.
    pause_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, default=None)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    update_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Filter(Base):
    __tablename__ = "filters"
    __table_args__ = (Index("ix_filters_account_id_create_time", "account_id", "create_time", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    update_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applications: Mapped[list[FilterApplication]] = children("FilterApplication.position")
    event_types: Mapped[list[FilterEventType]] = children("FilterEventType.position")
    levels: Mapped[list[FilterLevel]] = children("FilterLevel.position")
    endpoints: Mapped[list[FilterEndpoint]] = children("FilterEndpoint.position")


class FilterApplication(Base):
    __tablename__ = "filter_applications"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    filter_id: Mapped[str] = mapped_column(ForeignKey("filters.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    application: Mapped[str] = mapped_column(String(100))


class FilterEventType(Base):
    __tablename__ = "filter_event_types"
    __table_args__ = (Index("ix_filter_event_types_reference", "application", "event_type"),)

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    filter_id: Mapped[str] = mapped_column(ForeignKey("filters.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    application: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(100))


class FilterLevel(Base):
    __tablename__ = "filter_levels"
    __table_args__ = (Index("ix_filter_levels_reference", "application", "event_type", "level"),)

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    filter_id: Mapped[str] = mapped_column(ForeignKey("filters.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    application: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(100))


class FilterEndpoint(Base):
    __tablename__ = "filter_endpoints"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    filter_id: Mapped[str] = mapped_column(ForeignKey("filters.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)


class Change(Base):
    """One committed change; followers read these in sequence order."""

    __tablename__ = "changes"
    __table_args__ = {"sqlite_autoincrement": True}  # never reuse a pruned sequence number

    sequence: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    #: application, endpoint or filter.
    kind: Mapped[str] = mapped_column(String(20))
    resource_id: Mapped[str] = mapped_column(String(100))
    account_id: Mapped[str] = mapped_column(String(64), default="")
    create_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ChangeLogState(Base):
    """One row: the highest sequence pruned, so a follower asking for older changes is told it missed some."""

    __tablename__ = "change_log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pruned_through: Mapped[int] = mapped_column(BigInteger, default=0)
