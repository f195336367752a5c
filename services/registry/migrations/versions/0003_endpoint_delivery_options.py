"""Endpoints' delivery options: a rate limit (requests per second or minute; 0: none) and the delivery
order ("unordered" or "ordered"). Existing endpoints: no limit, unordered.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("rate_limit_requests", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("rate_limit_period", sa.String(length=10), nullable=False, server_default=""))
        batch.add_column(sa.Column("delivery_order", sa.String(length=10), nullable=False, server_default="unordered"))


def downgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("delivery_order")
        batch.drop_column("rate_limit_period")
        batch.drop_column("rate_limit_requests")
