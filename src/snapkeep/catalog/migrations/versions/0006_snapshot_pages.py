"""snapshots: the period that took each one, and the indexes pages and the expiry sweep read through

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("period_id", sa.String(length=36), nullable=True))  # existing rows: manual
        batch.create_index("ix_snapshots_period_created_at_id", ["period_id", "created_at", "id"], unique=False)
        batch.create_index("ix_snapshots_created_at_id", ["created_at", "id"], unique=False)
        batch.create_index(
            "ix_snapshots_subject_created_at_id", ["subject_type", "subject_id", "created_at", "id"], unique=False
        )
        batch.create_index("ix_snapshots_status_expires_at", ["status", "expires_at"], unique=False)
        batch.create_index(
            "ix_snapshots_subject_period_created_at", ["subject_id", "period_id", "created_at", "id"], unique=False
        )
    with op.batch_alter_table("jobs") as batch:
        batch.create_index("ix_jobs_created_at_id", ["created_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_created_at_id")
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_index("ix_snapshots_subject_period_created_at")
        batch.drop_index("ix_snapshots_status_expires_at")
        batch.drop_index("ix_snapshots_subject_created_at_id")
        batch.drop_index("ix_snapshots_created_at_id")
        batch.drop_index("ix_snapshots_period_created_at_id")
        batch.drop_column("period_id")
