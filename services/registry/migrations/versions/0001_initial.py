"""The registry's tables: applications, event types, levels, endpoints, filters, the change log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_applications")),
    )
    op.create_table(
        "change_log_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_log_state")),
    )
    op.bulk_insert(
        sa.table("change_log_state", sa.column("id", sa.Integer()), sa.column("pruned_through", sa.BigInteger())),
        [{"id": 1, "pruned_through": 0}],
    )
    op.create_table(
        "changes",
        sa.Column("sequence", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("resource_id", sa.String(length=100), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_changes")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_changes_create_time"), ["create_time"], unique=False)

    op.create_table(
        "endpoints",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=2000), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("ca_certificate", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("disabled_reason", sa.String(length=1000), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoints")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_endpoints_account_id_name")),
    )
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_endpoints_account_id"), ["account_id"], unique=False)

    op.create_table(
        "filters",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filters")),
    )
    with op.batch_alter_table("filters", schema=None) as batch_op:
        batch_op.create_index("ix_filters_account_id_create_time", ["account_id", "create_time", "id"], unique=False)

    op.create_table(
        "event_types",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("application_name", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_name"],
            ["applications.name"],
            name=op.f("fk_event_types_application_name_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_types")),
        sa.UniqueConstraint("application_name", "key", name=op.f("uq_event_types_application_name_key")),
    )
    op.create_table(
        "filter_applications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("filter_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("application", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["filter_id"], ["filters.id"], name=op.f("fk_filter_applications_filter_id_filters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filter_applications")),
    )
    with op.batch_alter_table("filter_applications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_filter_applications_filter_id"), ["filter_id"], unique=False)

    op.create_table(
        "filter_endpoints",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("filter_id", sa.String(length=36), nullable=False),
        sa.Column("endpoint_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name=op.f("fk_filter_endpoints_endpoint_id_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["filter_id"], ["filters.id"], name=op.f("fk_filter_endpoints_filter_id_filters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filter_endpoints")),
    )
    with op.batch_alter_table("filter_endpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_filter_endpoints_endpoint_id"), ["endpoint_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_filter_endpoints_filter_id"), ["filter_id"], unique=False)

    op.create_table(
        "filter_event_types",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("filter_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("application", sa.String(length=100), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["filter_id"], ["filters.id"], name=op.f("fk_filter_event_types_filter_id_filters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filter_event_types")),
    )
    with op.batch_alter_table("filter_event_types", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_filter_event_types_filter_id"), ["filter_id"], unique=False)
        batch_op.create_index("ix_filter_event_types_reference", ["application", "event_type"], unique=False)

    op.create_table(
        "filter_levels",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("filter_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("application", sa.String(length=100), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("level", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["filter_id"], ["filters.id"], name=op.f("fk_filter_levels_filter_id_filters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filter_levels")),
    )
    with op.batch_alter_table("filter_levels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_filter_levels_filter_id"), ["filter_id"], unique=False)
        batch_op.create_index("ix_filter_levels_reference", ["application", "event_type", "level"], unique=False)

    op.create_table(
        "levels",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_type_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_type_id"], ["event_types.id"], name=op.f("fk_levels_event_type_id_event_types"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_levels")),
        sa.UniqueConstraint("event_type_id", "key", name=op.f("uq_levels_event_type_id_key")),
    )


def downgrade() -> None:
    op.drop_table("levels")
    with op.batch_alter_table("filter_levels", schema=None) as batch_op:
        batch_op.drop_index("ix_filter_levels_reference")
        batch_op.drop_index(batch_op.f("ix_filter_levels_filter_id"))

    op.drop_table("filter_levels")
    with op.batch_alter_table("filter_event_types", schema=None) as batch_op:
        batch_op.drop_index("ix_filter_event_types_reference")
        batch_op.drop_index(batch_op.f("ix_filter_event_types_filter_id"))

    op.drop_table("filter_event_types")
    with op.batch_alter_table("filter_endpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_filter_endpoints_filter_id"))
        batch_op.drop_index(batch_op.f("ix_filter_endpoints_endpoint_id"))

    op.drop_table("filter_endpoints")
    with op.batch_alter_table("filter_applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_filter_applications_filter_id"))

    op.drop_table("filter_applications")
    op.drop_table("event_types")
    with op.batch_alter_table("filters", schema=None) as batch_op:
        batch_op.drop_index("ix_filters_account_id_create_time")

    op.drop_table("filters")
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_endpoints_account_id"))

    op.drop_table("endpoints")
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_changes_create_time"))

    op.drop_table("changes")
    op.drop_table("change_log_state")
    op.drop_table("applications")
