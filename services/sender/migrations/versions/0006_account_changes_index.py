"""A resumed WatchDeliveries reads what changed in an account since its resume token, in the order it
changed: one range of (account_id, updated_at) (services/sender/watch_cursor.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_account_id_updated_at", "deliveries", ["account_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_account_id_updated_at", table_name="deliveries")
