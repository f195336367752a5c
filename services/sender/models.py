"""The sender's tables: the durable delivery queue, the attempt log, and each endpoint's failure streak."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    types,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import metadata


class UTCDateTime(types.TypeDecorator):
    """Aware UTC datetimes on both databases: timestamptz on PostgreSQL; on SQLite (no time zones)
    naive UTC text, so that comparisons in SQL order correctly."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DeliveryState(enum.StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class Base(DeclarativeBase):
    metadata = metadata()


class Delivery(Base):
    """One event to one endpoint: the queue entry and where it stands."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        # The poller's question: what is PENDING and due?
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        # The API's: an account's deliveries, newest first.
        Index("ix_deliveries_account_id_created_at", "account_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    endpoint_id: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(512))
    #: The event as its JSON body: {"id", "application", "event_type", "level", "account_id", "timestamp", "message"}.
    event: Mapped[str] = mapped_column(Text)
    #: W3C trace context carried into the delivery's headers.
    traceparent: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When this delivery's first failed attempt happened.
    first_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The lease: until then the sender `claimed_by` works on it; after it, anyone may take it over.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Attempt(Base):
    """One try at a delivery, as it went."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    latency_seconds: Mapped[float] = mapped_column(Float)
    http_status: Mapped[int] = mapped_column(Integer, default=0)
    #: The first 4 KB of the answer.
    response_body: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text, default="")
    succeeded: Mapped[bool] = mapped_column(default=False)


class EndpointHealth(Base):
    """Since when an endpoint has failed without a success in between (NULL: it is not failing),
    so a sender can disable one that failed for too long, whichever replica saw its failures."""

    __tablename__ = "endpoint_health"

    endpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
