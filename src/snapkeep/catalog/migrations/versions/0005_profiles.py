"""snapshot profiles and the schedule

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "profiles",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner_tenant_id", sa.String(length=36), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("ignore_warning", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_tenant_id", "name"),
    )
    op.create_table(
        "profile_assignments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("profile_id", sa.String(length=36), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("subject_name", sa.String(length=128), nullable=False),
        sa.Column("owner_tenant_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_tenant_id"],
            ["tenants.id"],
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject_type", "subject_id"),
    )
    with op.batch_alter_table("profile_assignments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_profile_assignments_profile_id"), ["profile_id"], unique=False)

    op.create_table(
        "profile_periods",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("profile_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("profile_id", "name"),
    )
    with op.batch_alter_table("profile_periods", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_profile_periods_profile_id"), ["profile_id"], unique=False)

    op.create_table(
        "schedule",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("period_id", sa.String(length=36), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_run", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_snapshot_id", sa.String(length=36), nullable=True),
        sa.Column("running_since", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["period_id"], ["profile_periods.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject_id", "period_id", "subject_type"),
    )
    with op.batch_alter_table("schedule", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_next_due"), ["next_due"], unique=False)
        batch_op.create_index(batch_op.f("ix_schedule_period_id"), ["period_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_schedule_subject_id"), ["subject_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("schedule", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_subject_id"))
        batch_op.drop_index(batch_op.f("ix_schedule_period_id"))
        batch_op.drop_index(batch_op.f("ix_schedule_next_due"))

    op.drop_table("schedule")
    with op.batch_alter_table("profile_periods", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_periods_profile_id"))

    op.drop_table("profile_periods")
    with op.batch_alter_table("profile_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_assignments_profile_id"))

    op.drop_table("profile_assignments")
    op.drop_table("profiles")
    op.drop_table("catalog_meta")
