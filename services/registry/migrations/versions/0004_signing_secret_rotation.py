"""Signing secret rotation: the secret an endpoint's current one replaced, and until when it still signs
deliveries. Existing endpoints: none.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("previous_secret", sa.String(length=200), nullable=False, server_default=""))
        batch.add_column(sa.Column("previous_secret_expire_time", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("previous_secret_expire_time")
        batch.drop_column("previous_secret")
