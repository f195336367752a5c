"""Deliveries are idempotent on (event id, application, endpoint id): an event id is its application's
own, so two applications' events with the same id are two deliveries, not one acknowledged twice.

Existing deliveries take their application from their stored event JSON (where every delivery has
it); a row whose JSON lacks it gets "" (no application sends as "").

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _application_of_event() -> sa.ColumnElement:
    """SQL for the `application` of a row's `event` JSON (text), '' when it has none."""
    event = sa.column("event", sa.Text())
    if op.get_bind().dialect.name == "postgresql":
        application = sa.cast(event, sa.JSON()).op("->>")("application")
    else:
        application = sa.func.json_extract(event, "$.application")
    return sa.func.coalesce(application, "")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("application", sa.String(255), nullable=True))
    deliveries = sa.table("deliveries", sa.column("application", sa.String(255)))
    op.execute(deliveries.update().values(application=_application_of_event()))
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("application", existing_type=sa.String(255), nullable=False)
        batch.drop_constraint("uq_deliveries_event_id_endpoint_id", type_="unique")
        batch.create_unique_constraint(
            "uq_deliveries_event_id_application_endpoint_id", ["event_id", "application", "endpoint_id"]
        )


#: Deliveries that share an (event id, endpoint id) with an older one: what the old key cannot hold.
_DUPLICATES = (
    "SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY event_id, endpoint_id ORDER BY created_at, id)"
    " AS n FROM deliveries) AS ranked WHERE n > 1"
)


def downgrade() -> None:
    # Events of different applications with one id to one endpoint cannot all stay: the oldest is kept.
    op.execute(sa.text(f"DELETE FROM attempts WHERE delivery_id IN ({_DUPLICATES})"))
    op.execute(sa.text(f"DELETE FROM deliveries WHERE id IN ({_DUPLICATES})"))
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_event_id_application_endpoint_id", type_="unique")
        batch.create_unique_constraint("uq_deliveries_event_id_endpoint_id", ["event_id", "endpoint_id"])
        batch.drop_column("application")
