"""The sender's tables: the durable delivery queue, the attempt log, and each endpoint's failure streak."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    types,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import metadata


class UTCDateTime(types.TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases: timestamptz on PostgreSQL; on SQLite (no time zones)
    naive UTC text, so that comparisons in SQL order correctly."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DeliveryState(enum.StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class Base(DeclarativeBase):
    metadata = metadata()
    #: Every model here is mapped to a Table (DeclarativeBase says only FromClause, which insert,
    #: update and delete do not take).
    __table__: ClassVar[Table]


class Delivery(Base):
    """One event to one endpoint: the queue entry and where it stands."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # The idempotency key: an event id is its application's own, so two applications' events
        # "42" are two deliveries (event id first: a replay's lookup is by event id).
        UniqueConstraint("event_id", "application", "endpoint_id"),
        # The poller's question: what is PENDING and due?
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        # The poller's, per lane: an endpoint's due deliveries in the order they go out (and any
        # lookup by endpoint).
        Index(
            "ix_deliveries_endpoint_id_status_next_attempt_at", "endpoint_id", "status", "next_attempt_at", "created_at"
        ),
        # The API's: an account's deliveries, newest first.
        Index("ix_deliveries_account_id_created_at", "account_id", "created_at"),
        # A resumed watch's: what changed in an account since a time, in the order it changed.
        Index("ix_deliveries_account_id_updated_at", "account_id", "updated_at"),
        # Retention's: finished deliveries, oldest first.
        Index("ix_deliveries_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    endpoint_id: Mapped[str] = mapped_column(String(64))
    #: The event's application (as in `event`).
    application: Mapped[str] = mapped_column(String(255))
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
    #: Bumped by every claim: an outcome is written only by the owner of the generation it read.
    lease_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Attempt(Base):
    """One try at a delivery, as it went."""

    __tablename__ = "attempts"
    __table_args__ = (
        # The endpoints' health (BatchGetEndpointStats): an account's endpoint's attempts by time, its
        # last one and those of the last 24 hours, each an index range (`succeeded` in it: counted
        # without reading the rows).
        Index("ix_attempts_account_id_endpoint_id_started_at", "account_id", "endpoint_id", "started_at", "succeeded"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    latency_seconds: Mapped[float] = mapped_column(Float)
    http_status: Mapped[int] = mapped_column(Integer, default=0)
    #: The first 4 KB of the answer.
    response_body: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text, default="")
    succeeded: Mapped[bool] = mapped_column(default=False)
    #: The delivery's account and endpoint, so an endpoint's attempts are found without its deliveries.
    account_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    endpoint_id: Mapped[str] = mapped_column(String(64), default="", server_default="")


class EndpointHealth(Base):
    """Since when an endpoint has failed without a success in between (NULL: it is not failing),
    so a sender can disable one that failed for too long, whichever replica saw its failures."""

    __tablename__ = "endpoint_health"

    endpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxEvent(Base):
    """An `endpoint-disabled` event this sender decided on, kept until the broker acknowledged it
    (services/sender/outbox.py). Written before the registry is asked to disable the endpoint;
    `confirmed` once the registry said this sender changed it (an unconfirmed row left behind by a
    sender that died in between is carried out by whichever sender finds it)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_available_at", "available_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    #: The event's id (a uuid4): a publish repeated after a doubtful failure is delivered once.
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    account_id: Mapped[str] = mapped_column(String(64))
    endpoint_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    #: The record's value: the event's checked JSON (hooks_client.envelope).
    payload: Mapped[str] = mapped_column(Text)
    confirmed: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    #: Not before then does a sender take it (a retry's backoff, or another sender's claim).
    available_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
