"""Endpoints' health (BatchGetEndpointStats): each attempt names its delivery's account and endpoint,
indexed by (account, endpoint, start time, success), so an endpoint's last attempt and its attempts of
the last 24 hours are each one index range, not a walk through its deliveries. Existing attempts take
them from their deliveries (one UPDATE: on a large attempt log, run it in a quiet hour).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("account_id", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("endpoint_id", sa.String(length=64), nullable=False, server_default=""))
    op.execute(
        "UPDATE attempts SET"
        " account_id = (SELECT deliveries.account_id FROM deliveries WHERE deliveries.id = attempts.delivery_id),"
        " endpoint_id = (SELECT deliveries.endpoint_id FROM deliveries WHERE deliveries.id = attempts.delivery_id)"
    )
    op.create_index(
        "ix_attempts_account_id_endpoint_id_started_at",
        "attempts",
        ["account_id", "endpoint_id", "started_at", "succeeded"],
    )


def downgrade() -> None:
    op.drop_index("ix_attempts_account_id_endpoint_id_started_at", table_name="attempts")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("endpoint_id")
        batch.drop_column("account_id")
