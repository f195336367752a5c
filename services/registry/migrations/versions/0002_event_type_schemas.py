"""Event types may carry a JSON Schema for their events' `message`, and the version (hash) naming it.

Existing event types have none: `schema` NULL, `schema_version` ''.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event_types") as batch:
        batch.add_column(sa.Column("schema", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("schema_version", sa.String(length=64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("event_types") as batch:
        batch.drop_column("schema_version")
        batch.drop_column("schema")
