"""The poller claims a lane's waiting deliveries by one index range: (endpoint_id, status,
next_attempt_at, created_at) finds an endpoint's due deliveries in the order they go out, so a claim
costs what it takes, not a scan of every pending row. It serves the lookups by endpoint too, so the
index on endpoint_id alone goes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_endpoint_id_status_next_attempt_at",
        "deliveries",
        ["endpoint_id", "status", "next_attempt_at", "created_at"],
    )
    op.drop_index("ix_deliveries_endpoint_id", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_endpoint_id", "deliveries", ["endpoint_id"])
    op.drop_index("ix_deliveries_endpoint_id_status_next_attempt_at", table_name="deliveries")
